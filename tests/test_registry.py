"""Registry: built-ins present, duplicates refused, unknown names listed."""

import pytest

from sim import registry
from sim.errors import InputError
from sim.policies.base import Policy


def test_builtins_registered():
    names = registry.names()
    assert "fifo" in names and "edf" in names and "edf-accessctrl" in names


def test_unknown_policy_lists_valid_names():
    with pytest.raises(InputError) as e:
        registry.get("edff")
    assert "edff" in str(e.value) and "edf-accessctrl" in str(e.value)


def test_duplicate_name_refused():
    class Impostor(Policy):
        NAME = "fifo"

    with pytest.raises(ValueError, match="already registered"):
        registry.register(Impostor)


def test_unknown_parameter_is_an_input_error():
    with pytest.raises(InputError, match="unknown parameter"):
        registry.create("fifo", {"backfil": True})


def test_parameter_type_checked():
    p = registry.create("fifo", {"backfill": "true"})
    assert p.params.backfill is True


def test_third_party_policy_via_entry_point(monkeypatch):
    """A package that declares a `clustersim.policies` entry point is registered on load."""
    from types import SimpleNamespace

    class ThirdParty(Policy):
        NAME = "third-party-test"
        SUMMARY = "test"

    fake = SimpleNamespace(load=lambda: ThirdParty)
    monkeypatch.setattr(registry, "_loaded", False)
    monkeypatch.setattr(registry, "entry_points",
                        lambda group: [fake] if group == registry.ENTRY_POINT_GROUP else [])
    assert "third-party-test" in registry.names()
    assert registry.get("third-party-test") is ThirdParty
    registry._REGISTRY.pop("third-party-test")
