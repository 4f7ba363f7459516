"""The spiking feed-forward (GELU) circuit against NumPy's GELU and its Poisson noise budget."""

import math

import numpy as np
import pytest

from analysis.spikes import chi_square_tolerance
from circuits.feedforward import FeedForwardSpec, feedforward_spec, output_error
from circuits.runners import CircuitPool
from models.feedforward import gelu as brian_gelu


def reference_gelu(x):
    """BERT's exact GELU, x Phi(x), written out here as the independent reference."""
    return np.array([0.5 * u * (1.0 + math.erf(u / math.sqrt(2.0))) for u in np.ravel(x)]).reshape(np.shape(x))
from models.parameters import ParameterError

SMALL = {"neurons_per_unit": 16, "off_neurons_per_unit": 2}


def small_block(seed=0, tokens=3, dim=16, units=24):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((tokens, dim))
    return x, rng.standard_normal((units, dim)) / math.sqrt(dim), 0.3 * rng.standard_normal(units)


def test_brian_gelu_is_the_reference_gelu():
    u = np.linspace(-8, 8, 161)
    np.testing.assert_allclose(brian_gelu(u), reference_gelu(u), rtol=0, atol=1e-15)
    assert abs(reference_gelu(np.array([-0.7517916]))[0] + 0.1699714) < 1e-6     # GELU's minimum


def test_decoded_activations_follow_gelu_within_the_poisson_bound():
    x, w_in, b_in = small_block()
    result = feedforward_spec(x, w_in, b_in, seed=3, **SMALL).simulate()
    metrics = result.metrics
    np.testing.assert_allclose(result.g_rate, reference_gelu(x @ w_in.T + b_in))
    # Squared error over its expectation is a sum of scaled chi-square(1) terms.
    assert 1 / metrics["bound_tolerance_ratio"] < metrics["spike_vs_gelu_over_bound"] < metrics["bound_tolerance_ratio"]
    # No bias: the z-scores of the 72 activations average to 0 within 4 standard errors.
    z = (result.g_spike - result.g_rate) / np.sqrt(result.variance)
    assert abs(z.mean()) < 4 / math.sqrt(z.size)
    # Only the counting windows carry GELU spikes; the decoder's gains are P t_count rho.
    circuit = result.circuit
    assert circuit.gains() == pytest.approx((16 * 0.1 * 40, 2 * 0.1 * 320))
    t = circuit.monitors["gelu_on_spikes"].t_
    windows = circuit.schedule.learn_windows()
    inside = np.any((t[:, None] >= windows[:, 0] - 1e-9) & (t[:, None] < windows[:, 1] + 0.002), axis=1)
    assert inside.all()


def test_output_error_is_the_projected_variance():
    rng = np.random.default_rng(1)
    variance, w_out, g = rng.uniform(0, 1, (3, 5)), rng.standard_normal((4, 5)), rng.standard_normal((3, 5))
    samples = g[None] + rng.standard_normal((20000, 3, 5)) * np.sqrt(variance)
    measured = np.sqrt(np.mean(np.sum((samples @ w_out.T - g @ w_out.T) ** 2, axis=(1, 2))))
    assert output_error(variance, w_out, g @ w_out.T) == pytest.approx(measured / np.linalg.norm(g @ w_out.T), rel=0.02)


@pytest.mark.parametrize("change, message", [
    ({"x": np.full((2, 16), 30.0)}, "fire"),
    ({"b_in": np.full(24, 40.0)}, "GELU activation"),
    ({"w_in": np.ones((24, 15))}, "shapes do not match"),
    ({"x": np.full((2, 16), np.nan)}, "non-finite"),
])
def test_unusable_blocks_are_refused_before_simulating(change, message):
    x, w_in, b_in = small_block()
    arrays = {"x": x, "w_in": w_in, "b_in": b_in, **change}
    with pytest.raises(ValueError, match=message):
        feedforward_spec(arrays["x"], arrays["w_in"], arrays["b_in"], **SMALL)


def test_bad_options_and_parameters_are_refused():
    x, w_in, b_in = small_block()
    with pytest.raises(ValueError, match="unknown option 'n_features'"):
        feedforward_spec(x, w_in, b_in, n_features=3)
    with pytest.raises(ParameterError, match="dt_enc"):
        feedforward_spec(x, w_in, b_in, params={"dt_enc": "1*ms"})
    with pytest.raises(ParameterError, match="tau_syn"):
        feedforward_spec(x, w_in, b_in, params={"tau_syn": "2*ms"})


def test_blocks_in_worker_processes_equal_blocks_in_one_process():
    specs = [feedforward_spec(*small_block(seed), seed=seed, **SMALL) for seed in range(2)]
    assert all(isinstance(s, FeedForwardSpec) for s in specs)
    with CircuitPool(workers=1) as pool:
        sequential = pool.run(specs)
    with CircuitPool(workers=2) as pool:
        parallel = pool.run(specs)
    for a, b in zip(sequential, parallel):
        np.testing.assert_array_equal(a.g_spike, b.g_spike)
        np.testing.assert_array_equal(a.circuit.monitors["gelu_on_spikes"].t_, b.circuit.monitors["gelu_on_spikes"].t_)
