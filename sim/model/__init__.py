"""Pure data: jobs, tasks, clusters, throughput tables, snapshots, decisions, placement."""
