"""Length buckets: a sentence padded to a longer circuit (``pad_to``) computes what the unpadded
circuit computes, and every sentence of a bucket has one structure (one standalone binary).

The padded and the unpadded run of a head share their seeds, but not their spike draws (the padded
circuit draws random numbers for more neurons and steps), so their decoded outputs are two
independent draws around one rate ideal. Each output element scatters with the variance var_i of
the rate model's noise budget, so the difference of two runs has variance 2 var_i, and
|y_padded - y_unpadded|^2 / (2 sum var) is a sum of scaled chi-square(1) terms with
n_eff = (sum var)^2 / sum var^2 effective degrees of freedom, of expectation 1: its square root
stays below ``chi_square_tolerance(n_eff)`` (docs/model.md §4). Systematic errors common to both
runs (the encoders' ripple and quantisation: their phases come from the same seed) cancel in the
difference, so the tolerance is conservative. The feed-forward and linear stages pad after their
real tokens, which leaves their random draws in the real windows as they were: there the
difference is even zero on the numpy target, and the same tolerance holds trivially.
"""

import numpy as np
import pytest

from analysis.attention import synthetic_head
from analysis.spikes import chi_square_tolerance
from circuits import exact_kernel
from circuits.feedforward import build_feedforward_circuit, feedforward_spec
from circuits.feedforward import rate_model as ffn_rate_model
from circuits.head import head_spec
from circuits.linear import build_linear_circuit, linear_spec
from circuits.linear import rate_model as linear_rate_model
from circuits.projection import window_values
from circuits.protocol import Schedule, bucket_length
from circuits.standalone import StandaloneCircuits, structure_key

#: Short windows at the transformer heads' 0.5 ms step: a padded head runs in a few seconds on numpy.
HEAD_PARAMS = {"t_settle": "50*ms", "t_learn": "100*ms", "t_read": "200*ms", "dt": "0.5*ms"}
HEAD_OPTIONS = dict(neurons_per_key=4, neurons_per_value=16)
FFN_PARAMS = {"dt": "1*ms", "dt_enc": "0.5*ms", "t_settle": "100*ms", "t_count": "100*ms"}
FFN_OPTIONS = dict(neurons_per_unit=16, off_neurons_per_unit=2)
LINEAR_PARAMS = {"dt": "1*ms", "dt_enc": "1*ms", "lin_enc_gain": "100*Hz", "t_count": "100*ms"}
L, N = 3, 5                     # real tokens, bucket


def head(n_tokens=L, seed=0):
    return synthetic_head(n_tokens, 4, 4, 1.2, np.random.default_rng(seed))


def projection_weights(n_in, n_out=5, seed=7):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n_out, n_in)), rng.normal(size=n_out)


def build_head(pad_to, n_tokens=L):
    w_out, b_out = projection_weights(4)
    return exact_kernel.build_exact_kernel_circuit(*head(n_tokens), params=HEAD_PARAMS, seed=0, w_out=w_out,
                                                   b_out=b_out, pad_to=pad_to, **HEAD_OPTIONS)


def block(n_tokens=L, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_tokens, 16))
    return x, rng.standard_normal((24, 16)) / 4, 0.3 * rng.standard_normal(24)


def stage(n_tokens=L, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n_tokens, 6)), rng.normal(size=(4, 6)) / np.sqrt(6), rng.normal(size=4)


def assert_same_within_statistics(padded, unpadded, variance):
    """The difference of two independent runs against its chi-square tolerance (module docstring)."""
    variance = np.asarray(variance, dtype=float)
    ratio = np.linalg.norm(padded - unpadded) / np.sqrt(2 * variance.sum())
    assert ratio < chi_square_tolerance(variance.sum() ** 2 / np.sum(variance ** 2)), ratio


def spikes_in(monitor, windows):
    t = np.asarray(monitor.t_[:])
    return int(np.sum(np.any((t[:, None] >= windows[:, 0]) & (t[:, None] < windows[:, 1]), axis=1)))


# ------------------------------------------------------------------------------------- schedule


def test_bucket_length():
    assert [bucket_length(n) for n in (1, 16, 17, 64, 65, 128)] == [16, 16, 32, 64, 128, 128]
    assert bucket_length(5, buckets=(4, 8)) == 8
    with pytest.raises(ValueError, match="largest length bucket, 128"):
        bucket_length(129)
    with pytest.raises(ValueError, match="integer >= 1"):
        bucket_length(0)


@pytest.mark.parametrize("causal", [False, True])
def test_padding_keeps_every_real_token_as_old_at_every_real_read(causal):
    p = {"t_settle": 0.05, "t_learn": 0.1, "t_read": 0.2}
    plain = Schedule.from_params(L, L, p, causal)
    padded = Schedule.from_params(L, L, p, causal, pad_to=N)
    np.testing.assert_allclose(padded.age_at_reads(), plain.age_at_reads(), rtol=0, atol=1e-12)
    assert len(padded.read_windows(padded=True)) == N and len(padded.read_windows()) == L
    assert padded.duration == pytest.approx(plain.duration * N / L)
    # Empty windows show nothing (-1), learn nothing and read nothing.
    rows, empty = padded.input_rows(), padded.token_windows(padded=True)[0]
    assert set(rows[int(round(empty[0] / padded.bin)):int(round(empty[1] / padded.bin))]) == {-1}
    assert padded.write_phase().sum() == plain.write_phase().sum()
    assert padded.read_phase().sum() == plain.read_phase().sum()
    # Only real tokens' populations are recruited, each for as long as without padding.
    tokens, bins = np.unique(padded.recruited_token(), return_counts=True)
    plain_tokens, plain_bins = np.unique(plain.recruited_token(), return_counts=True)
    np.testing.assert_array_equal(tokens, np.arange(-1, L))
    np.testing.assert_array_equal(tokens, plain_tokens)
    np.testing.assert_array_equal(bins[1:], plain_bins[1:])


def test_pad_to_shorter_than_the_input_or_on_another_circuit_is_refused():
    with pytest.raises(ValueError, match="pad_to = 2 is shorter than the input"):
        head_spec(*head(), "exact", pad_to=2)
    with pytest.raises(ValueError, match="unknown option 'pad_to'"):
        head_spec(*head(), "random", pad_to=N)
    with pytest.raises(ValueError, match="shorter than the input"):
        feedforward_spec(*block(), pad_to=2)
    with pytest.raises(ValueError, match="shorter than the input"):
        linear_spec(*stage(), pad_to=2)


def test_sentences_of_one_bucket_share_one_structure():
    """What the standalone device compiles by (``structure_key``) is the bucket's, whatever the length."""
    builders = {"exact": lambda n, pad: build_head(pad, n),
                "feedforward": lambda n, pad: build_feedforward_circuit(*block(n), params=FFN_PARAMS, pad_to=pad,
                                                                        **FFN_OPTIONS),
                "linear": lambda n, pad: build_linear_circuit(*stage(n), params=LINEAR_PARAMS, pad_to=pad)}
    for name, build in builders.items():
        short, long_, full = structure_key(build(L, N)), structure_key(build(L + 1, N)), structure_key(build(N, None))
        assert short == long_ == full, name
        assert short != structure_key(build(L, None)), name


# ---------------------------------------------------------------------------------- attention


@pytest.fixture(scope="module")
def heads():
    runs = {}
    for pad_to in (None, N):
        circuit = build_head(pad_to)
        circuit.run()
        runs[pad_to] = circuit, exact_kernel.rate_model(circuit)
    return runs


def test_padded_head_decodes_what_the_unpadded_one_does(heads):
    (plain, ideal), (padded, padded_ideal) = heads[None], heads[N]
    assert padded.decode().shape == plain.decode().shape == (L, 4)
    noise = ideal["noise"]
    assert_same_within_statistics(padded.decode(), plain.decode(),
                                  noise["var_output"] + noise["var_read"] + noise["var_write"])
    # The output projection (W_O on synapses) of the real reads: W_O times the decoded output, exactly.
    w_out, b_out = projection_weights(4)
    np.testing.assert_allclose(padded.projected(), padded.decode() @ w_out.T + b_out, rtol=1e-9, atol=1e-9)
    # It sampled every read window; the empty ones accumulated nothing (no event, no bias).
    every_read = window_values(padded.monitors["out_samples"], N, len(w_out))
    assert not every_read[L:].any()
    assert exact_kernel.token_counts(padded).shape == (L, L)


def test_padded_head_has_the_unpadded_rate_model(heads):
    (_, ideal), (_, padded) = heads[None], heads[N]
    np.testing.assert_allclose(padded["y_rate"], ideal["y_rate"], rtol=0, atol=1e-12)
    for name in ("var_output", "var_read", "var_write"):
        np.testing.assert_allclose(padded["noise"][name], ideal["noise"][name], rtol=0, atol=1e-12)
    assert padded["noise"]["relative_error"] == pytest.approx(ideal["noise"]["relative_error"], rel=1e-12)


def test_empty_windows_of_a_padded_head_stay_empty(heads):
    """Empty key populations never fire, learn or write: their afferents and tripartite weights and
    their processes stay zero; before the first real write and after the last real read nothing fires."""
    circuit, _ = heads[N]
    per_key, s = circuit.config["neurons_per_key"], circuit.schedule
    real = L * per_key
    assert len(circuit.groups["key_neurons"]) == N * per_key
    keys = np.asarray(circuit.monitors["key_neurons_spikes"].i[:])
    assert keys.size and not np.any(keys >= real)
    afferents = circuit.groups["afferent_synapses"]
    assert not np.any(np.asarray(afferents.w_aff_[:])[np.asarray(afferents.j[:]) >= real])
    assert np.any(np.asarray(afferents.w_aff_[:])[np.asarray(afferents.j[:]) < real])          # the real ones learned
    tripartite = circuit.groups["tripartite_synapses"]
    assert not np.any(np.asarray(tripartite.w[:])[np.asarray(tripartite.i[:]) >= real])
    calcium = np.asarray(circuit.groups["astro_processes"].Ca[:])
    assert not calcium[real:].any() and np.all(calcium[:real] > 0)
    half_step = float(circuit.params["dt"]) / 2           # spike times are whole steps
    before = np.array([[0.0, s.token_windows()[0, 0] - half_step]])
    after = np.array([[s.read_windows()[-1, 1] + half_step, s.duration]])
    for name, monitor in circuit.monitors.items():
        if name.endswith("_spikes"):
            assert spikes_in(monitor, before) == 0, name
            assert spikes_in(monitor, after) == 0, name


# ------------------------------------------------------------------------ feed-forward and linear


def test_padded_ffn_block_computes_what_the_unpadded_one_does():
    x, w_in, b_in = block()
    w_out, b_out = projection_weights(24)
    plain, padded = (feedforward_spec(x, w_in, b_in, params=FFN_PARAMS, seed=3, w_out=w_out, b_out=b_out,
                                      pad_to=pad_to, **FFN_OPTIONS).simulate() for pad_to in (None, N))
    assert padded.g_spike.shape == (L, 24) and padded.y_spike.shape == (L, 5)
    assert_same_within_statistics(padded.g_spike, plain.g_spike, plain.variance)
    # The projected output's variance: each activation's variance through W_2.
    assert_same_within_statistics(padded.y_spike, plain.y_spike, plain.variance @ (w_out ** 2).T)
    np.testing.assert_allclose(padded.y_spike, padded.g_spike @ w_out.T + b_out, rtol=1e-9, atol=1e-9)
    ideal, padded_ideal = ffn_rate_model(plain.circuit), ffn_rate_model(padded.circuit)
    for name in ("g_rate", "variance"):
        np.testing.assert_allclose(padded_ideal[name], ideal[name], rtol=0, atol=1e-12)
    # Empty windows: no input, no count (the GELU neurons may finish a spike carried over from the
    # last real window in its first steps, never in an empty counting window), no accumulation.
    circuit = padded.circuit
    empty = circuit.schedule.learn_windows(padded=True)[L:]
    for name in ("ffn_encoders_spikes", "gelu_on_spikes", "gelu_off_spikes"):
        assert spikes_in(circuit.monitors[name], empty) == 0, name
    assert spikes_in(circuit.monitors["ffn_encoders_spikes"], circuit.schedule.token_windows(padded=True)[L:]) == 0
    assert not window_values(circuit.monitors["ffn_out_samples"], N, 5)[L:].any()


def test_padded_linear_stage_computes_what_the_unpadded_one_does():
    x, w, b = stage()
    plain, padded = (linear_spec(x, w, b, params=LINEAR_PARAMS, seed=1, pad_to=pad_to).simulate()
                     for pad_to in (None, N))
    assert padded.y_spike.shape == (L, 4)
    assert_same_within_statistics(padded.y_spike, plain.y_spike, plain.variance)
    ideal, padded_ideal = linear_rate_model(plain.circuit), linear_rate_model(padded.circuit)
    for name in ("y_rate", "variance"):
        np.testing.assert_allclose(padded_ideal[name], ideal[name], rtol=0, atol=1e-12)
    circuit = padded.circuit
    assert spikes_in(circuit.monitors["lin_encoders_spikes"], circuit.schedule.token_windows(padded=True)[L:]) == 0
    assert not window_values(circuit.monitors["lin_out_samples"], N, 4)[L:].any()       # not even the bias


# ------------------------------------------------------------------------------------- standalone


@pytest.mark.slow
def test_two_lengths_of_one_bucket_compile_once_on_standalone(tmp_path):
    """Two heads of 3 and 4 tokens padded to 5: one code generation and compilation (about a minute
    on two busy cores, hence slow), and each run gives its real queries, the empty keys silent."""
    w_out, b_out = projection_weights(4)
    with StandaloneCircuits("exact", root=tmp_path) as circuits:
        for n_tokens in (L, L + 1):
            circuit = circuits.run(*head(n_tokens, seed=n_tokens), params=HEAD_PARAMS, seed=0, w_out=w_out,
                                   b_out=b_out, pad_to=N, **HEAD_OPTIONS)
            assert circuit.decode().shape == (n_tokens, 4) and circuit.projected().shape == (n_tokens, 5)
            keys = np.asarray(circuit.monitors["key_neurons_spikes"].i[:])
            assert keys.size and not np.any(keys >= n_tokens * HEAD_OPTIONS["neurons_per_key"])
        assert circuits.builds == 1
