import json
import math

import pytest
from brian2 import Hz, ms, mV, second

from circuits import circuit_parameters
from models.parameters import (Parameter, ParameterError, ParameterSet, load_parameter_file,
                               parse_assignments, parse_quantity)


def test_defaults_carry_units_and_override_by_name():
    params = circuit_parameters()
    assert params["tau_ca"].has_same_dimensions(second)
    new = params.override(tau_ca="5*second", kappa=0.5)
    assert float(new["tau_ca"]) == 5.0
    assert new["kappa"] == 0.5
    assert float(params["tau_ca"]) != 5.0, "override must not mutate the original set"


@pytest.mark.parametrize("name, value, message", [
    ("tau_cx", "1*second", "unknown parameter 'tau_cx'"),
    ("tau_ca", "5*mV", "wrong unit"),
    ("tau_ca", "5", "wrong unit"),
    ("tau_ca", "0*second", "must be > 0"),
    ("tau_m", "-3*ms", "must be > 0"),
    ("kappa", "nan", "must be finite"),
    ("rho_value", "inf*Hz", "must be finite"),
    ("tau_ca", "5*parsec", "unknown unit or name 'parsec'"),
    ("tau_ca", "5*", "cannot parse"),
    ("tau_ca", "__import__('os')", "unknown unit or name"),
])
def test_bad_values_give_one_line_errors(name, value, message):
    with pytest.raises(ParameterError) as err:
        circuit_parameters("random", overrides={name: value})
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_quantity_values_are_checked_like_strings():
    params = circuit_parameters()
    assert params.override(tau_read=30 * ms)["tau_read"] == 30 * ms
    with pytest.raises(ParameterError, match="wrong unit"):
        params.override(tau_read=30 * mV)
    with pytest.raises(ParameterError, match="must be >= 0"):
        ParameterSet([Parameter("x", 1.0, 1, "x", nonnegative=True)]).override(x=-1)


def test_membership_follows_the_astrocyte_model():
    assert "tau_ca" in circuit_parameters("random", "minimal")
    assert "tau_ca" not in circuit_parameters("random", "gchi")
    assert "O_beta" in circuit_parameters("exact", "gchi")
    assert "rho_feature" not in circuit_parameters("exact")


def test_json_lists_every_parameter_with_unit():
    data = circuit_parameters().to_json()
    assert data["tau_ca"]["unit"] == "s" and data["rho_value"]["unit"] == "Hz"
    assert data["kappa"]["unit"] == "1"
    json.dumps(data)
    assert all({"value", "unit", "doc", "source"} <= set(v) for v in data.values())


def test_parameter_files_and_assignments(tmp_path):
    assert parse_assignments(["tau_ca = 5*second", "kappa=2"]) == {"tau_ca": "5*second", "kappa": "2"}
    with pytest.raises(ParameterError, match="--set: expected name = value"):
        parse_assignments(["tau_ca"])
    (tmp_path / "p.json").write_text('{"tau_ca": "2*second"}')
    (tmp_path / "p.txt").write_text("# comment\ntau_ca = 3*second  # why\n")
    assert load_parameter_file(tmp_path / "p.json") == {"tau_ca": "2*second"}
    assert load_parameter_file(tmp_path / "p.txt") == {"tau_ca": "3*second"}
    (tmp_path / "bad.txt").write_text("tau_ca = 3*second\n\nkappa: 2\n")
    with pytest.raises(ParameterError, match=r"bad.txt line 3: expected name = value, got 'kappa: 2'"):
        load_parameter_file(tmp_path / "bad.txt")
    (tmp_path / "bad.json").write_text("{tau_ca: ")
    with pytest.raises(ParameterError, match="not valid JSON"):
        load_parameter_file(tmp_path / "bad.json")
    with pytest.raises(ParameterError, match="not found"):
        load_parameter_file(tmp_path / "missing.json")


def test_parse_quantity_uses_brian_units():
    assert parse_quantity("2*Hz") == 2 * Hz
    assert math.isclose(float(parse_quantity("pi")), math.pi)
