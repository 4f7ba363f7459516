"""A causal head's memory stepped token by token (circuits.head_memory).

The independent reference is the whole causal head (``circuits.head.head_spec(..., causal=True)``)
run once on the same spike trains, tops and seed: the memory writes token t and reads query t in the
same Network period after period, and must fire what the whole head fires, spike for spike. The
coarse clock of tests/test_one_spike_keys.py keeps each run to about a second on numpy.
"""

import numpy as np
import pytest

from analysis import codes
from analysis.attention import synthetic_head
from circuits.codes import SpikeTrain
from circuits.exact_latency import astrocyte_log_signal, emitted_context, key_efficacies
from circuits.head import head_spec
from circuits.head_memory import CausalHeadMemory
from circuits.normaliser import process_memory
from tests.test_one_spike_keys import ONE_SPIKE

BASE, LEVELS = 1.2, 40            # ONE_SPIKE's latency code: code_base and t_code / dt_enc
X_TOP, V_TOP = 3.0, 4.0
OPTIONS = dict(code="latency", key_code="latency", causal=True, params=ONE_SPIKE)


def trains(seed, n_tokens=4, dim=8, value_dim=4):
    """The (queries, keys, values) of a synthetic head as the latency encoders of its scaled queries and
    keys and of its values fire them."""
    q, k, v = synthetic_head(n_tokens, dim, value_dim, 1.5, np.random.default_rng(seed))
    root = dim ** -0.25
    return tuple(SpikeTrain.encoded(x, top, BASE, LEVELS) for x, top in ((root * q, X_TOP), (root * k, X_TOP),
                                                                         (v, V_TOP)))


def token(train, t) -> SpikeTrain:
    """Token t of ``train`` as a train of one token."""
    mine = train.token == t
    return SpikeTrain(np.zeros(mine.sum(), int), train.channel[mine], train.step[mine], 1, train.n_dims, train.x_top,
                      train.base, train.levels)


def whole_head(inputs, **options):
    return head_spec(*inputs, "exact", **OPTIONS, **options).simulate()


def memory_of(whole, capacity, seed=0):
    """A memory with the whole head's tops and score top (what must be known before simulating)."""
    config = whole.circuit.config
    return CausalHeadMemory(capacity, config["dim"], config["value_dim"], x_top=config["x_top"],
                            v_top=config["v_top"], score_top=config["score_top"], y_top=config["y_top"],
                            params=ONE_SPIKE, seed=seed)


def stepped(memory, inputs, tokens):
    return [memory.step(*(token(train, t) for train in inputs)) for t in tokens]


def assert_same_train(a, b):
    for field in ("token", "channel", "step"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert (a.n_tokens, a.n_dims, a.x_top) == (b.n_tokens, b.n_dims, b.x_top)


@pytest.fixture(scope="module")
def reference():
    """The whole causal head of 4 tokens (d = 8, d_v = 4) and the same head stepped in a memory of 4."""
    inputs = trains(0)
    whole = whole_head(inputs)
    memory = memory_of(whole, 4)
    return inputs, whole, memory, stepped(memory, inputs, range(4))


def test_stepping_the_memory_fires_what_the_whole_causal_head_fires(reference):
    """Each step's context is the whole head's query t, spike for spike; so are the astrocyte's signal
    and the written keys' spikes of every read; and both are softmax within the head's budget."""
    inputs, whole, memory, steps = reference
    contexts = emitted_context(whole.circuit)
    for t, step in enumerate(steps):
        assert_same_train(step.context, token(contexts, t))
        np.testing.assert_array_equal(step.y, whole.y_spike[t])
    result = memory.result()
    np.testing.assert_array_equal(result.y_spike, whole.y_spike)
    assert_same_train(emitted_context(result.circuit), contexts)
    np.testing.assert_array_equal([s.log_signal for s in steps], astrocyte_log_signal(whole.circuit))
    # The whole head's keys not yet written fire too, with no weight; the memory's do not.
    efficacy = np.tril(key_efficacies(whole.circuit))
    np.testing.assert_array_equal(key_efficacies(result.circuit), efficacy)
    weighted = efficacy * process_memory(whole.circuit.params, whole.circuit.schedule)
    for t, step in enumerate(steps):
        np.testing.assert_allclose(step.attention, weighted[t, :t + 1] / weighted[t].sum(), rtol=1e-12)
    for run in (whole, result):
        metrics = run.metrics
        assert metrics["rel_err_spike_vs_rate"] <= metrics["bound_tolerance_ratio"] * metrics["poisson_bound"], metrics
        assert metrics["rel_err_spike_vs_softmax"] < 0.15, metrics
    assert result.metrics["rel_err_spike_vs_softmax"] == whole.metrics["rel_err_spike_vs_softmax"]


def test_the_bill_counts_each_step_once_and_only_written_keys(reference):
    """The steps' spikes and synaptic events add up to the run's; a read's key spikes are those of
    the written keys (t + 1 at step t, each key firing once), where the whole head's every key fires."""
    _, whole, memory, steps = reference
    circuit = memory.circuit()
    for totals, per_step in ((circuit.population_spikes(), [s.spikes for s in steps]),
                             (circuit.synaptic_events(), [s.synaptic_events for s in steps])):
        assert totals == {name: sum(s[name] for s in per_step) for name in totals}
    for t, step in enumerate(steps):
        assert len(step.key_spikes[0]) == t + 1 and sorted(step.key_spikes[1]) == list(range(t + 1))
    n_write = whole.circuit.config["write_spikes"]
    assert circuit.population_spikes()["key_neurons"] == 4 * n_write + 4 * 5 // 2
    assert whole.circuit.population_spikes()["key_neurons"] > circuit.population_spikes()["key_neurons"]


def test_a_memory_not_full_gives_the_padded_whole_head():
    """Three tokens stepped in a memory of five give the whole head of those three tokens padded to
    five (its empty (write, read) pairs first)."""
    inputs = trains(1, n_tokens=3)
    whole = whole_head(inputs, pad_to=5)
    memory = memory_of(whole, 5)
    steps = stepped(memory, inputs, range(3))
    contexts = emitted_context(whole.circuit)
    for t, step in enumerate(steps):
        assert_same_train(step.context, token(contexts, t))
    np.testing.assert_array_equal(memory.result().y_spike, whole.y_spike)


def test_a_second_memory_in_the_same_process_is_independent(reference):
    """A memory built and stepped on other inputs between two steps of a first one changes none of
    the first's spikes (each has its own tables), and fires its own head's."""
    inputs, whole, _, _ = reference
    first = memory_of(whole, 4)
    early = stepped(first, inputs, range(2))
    other = trains(2)
    other_whole = whole_head(other, score_top=whole.circuit.config["score_top"], y_top=whole.circuit.config["y_top"])
    second = memory_of(whole, 4)
    for t, step in enumerate(stepped(second, other, range(4))):
        assert_same_train(step.context, token(emitted_context(other_whole.circuit), t))
    late = stepped(first, inputs, range(2, 4))
    for t, step in enumerate(early + late):
        assert_same_train(step.context, token(emitted_context(whole.circuit), t))


def test_values_are_encoded_as_the_trains_carry_them(reference):
    """A step fed one token's values gives what the step fed their latency-coded train gives (the
    train ``SpikeTrain.encoded`` makes carries what the latency code delivers)."""
    inputs, whole, _, steps = reference
    x = np.random.default_rng(3).normal(size=(3, 5))
    np.testing.assert_array_equal(SpikeTrain.encoded(x, 2.0, BASE, LEVELS).values(),
                                  codes.latency_decode(x, 2.0, BASE, LEVELS))
    memory = memory_of(whole, 4)
    step = memory.step(*(token(train, 0).values()[0] for train in inputs))
    assert_same_train(step.context, steps[0].context)


def test_bad_steps_fail_with_one_line_before_simulating(reference):
    inputs, whole, _, _ = reference
    memory = memory_of(whole, 1)
    q, k, v = (token(train, 0) for train in inputs)
    two_tokens = SpikeTrain(inputs[0].token[inputs[0].token < 2], inputs[0].channel[inputs[0].token < 2],
                            inputs[0].step[inputs[0].token < 2], 2, 8, X_TOP, BASE, LEVELS)
    bad = [((two_tokens, k, v), "got 2 token"), ((q, v, v), "got 1 token.s. of 4 at"),
           ((q, SpikeTrain.encoded(k.values(), 5.0, BASE, LEVELS), v), "at top 5"),
           ((q, k, SpikeTrain.encoded(v.values(), V_TOP, 1.1, LEVELS)), "cannot be replayed"),
           ((q, k, np.full(4, np.nan)), "finite"), ((q, k, np.zeros((2, 4))), "shape")]
    for args, message in bad:
        with pytest.raises(ValueError, match=message) as error:
            memory.step(*args)
        assert "\n" not in str(error.value)
    assert memory.steps == 0 and memory.simulated_seconds == 0
    memory.step(q, k, v)
    with pytest.raises(ValueError, match="step 2 is beyond the memory's capacity of 1 tokens"):
        memory.step(q, k, v)
    for size in (dict(capacity=0), dict(dim=1.5)):
        with pytest.raises(ValueError, match="must be an integer >= 1"):
            CausalHeadMemory(**{"capacity": 2, "dim": 8, "value_dim": 4, **size}, x_top=X_TOP, v_top=V_TOP,
                             score_top=6.0, y_top=4.0, params=ONE_SPIKE)



@pytest.mark.slow
def test_a_chargpt_sized_memory_on_cython_fires_what_the_whole_head_fires(cython_target):
    """The compiled path (Cython code reads the replay tables through its own view of them) on
    chargpt's head size and protocol (d = d_v = 32, transformer.spiking.HEAD_ONE_SPIKE_PROTOCOL):
    two memories of 8 tokens, the second built and stepped between the first's steps, each fire
    their whole head's spikes."""
    from transformer.spiking import HEAD_ONE_SPIKE_PROTOCOL

    options = dict(OPTIONS, params=HEAD_ONE_SPIKE_PROTOCOL, score_top=12.0, y_top=V_TOP)
    heads = []
    for seed in (3, 4):
        q, k, v = synthetic_head(8, 32, 32, 1.5, np.random.default_rng(seed))
        inputs = tuple(SpikeTrain.encoded(x, top, 1.05, 200) for x, top in ((q / 32 ** 0.25, X_TOP),
                                                                             (k / 32 ** 0.25, X_TOP), (v, V_TOP)))
        heads.append((inputs, head_spec(*inputs, "exact", **options).simulate()))

    def memory():
        return CausalHeadMemory(8, 32, 32, x_top=X_TOP, v_top=V_TOP, score_top=12.0, y_top=V_TOP,
                                params=HEAD_ONE_SPIKE_PROTOCOL)

    first = memory()
    stepped(first, heads[0][0], range(4))
    second = memory()
    stepped(second, heads[1][0], range(8))
    stepped(first, heads[0][0], range(4, 8))
    for mem, (_, whole) in zip((first, second), heads):
        result = mem.result()
        assert_same_train(emitted_context(result.circuit), emitted_context(whole.circuit))
        metrics = result.metrics
        assert metrics["rel_err_spike_vs_rate"] <= metrics["bound_tolerance_ratio"] * metrics["poisson_bound"], metrics
