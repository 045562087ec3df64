"""The SimPy side: the only package that imports simpy."""
