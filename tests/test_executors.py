"""Executors: the back-ends agree with a plain loop and with each other, chunk as documented,
and survive every fault (raising, NaN/Inf, overlong and crashing evaluations) with exact counts."""
import functools

import numpy as np
import pytest

import simulators
from diffguide.executors import DaskExecutor, InProcess, ProcessPool

BACK_ENDS = ["in_process", "pool", "dask"]


@pytest.fixture(scope="module")
def pool():
    with ProcessPool(2) as executor:
        yield executor


@pytest.fixture(scope="module")
def dask():
    with DaskExecutor(workers=2, threads_per_worker=1, processes=True) as executor:
        yield executor


@pytest.fixture
def executor(request):
    return InProcess() if request.param == "in_process" else request.getfixturevalue(request.param)


def indexed_samples(n=7, size=6, seed=0):
    """Samples whose first entry is their index (the faulty simulators pick samples by it)."""
    samples = np.random.default_rng(seed).normal(size=(n, size))
    samples[:, 0] = np.arange(n)
    return samples


def loop(fn, samples):
    return np.stack([fn(sample) for sample in samples])


@pytest.mark.parametrize("executor", BACK_ENDS, indirect=True)
@pytest.mark.parametrize("batched", [False, True])
def test_every_back_end_gives_the_values_of_a_plain_loop(executor, batched):
    samples = indexed_samples()
    evaluation = executor.evaluate(simulators.heat_batch if batched else simulators.heat, samples, batched=batched)
    np.testing.assert_array_equal(evaluation.values, loop(simulators.heat, samples))  # same arithmetic, bit for bit
    assert not evaluation.failed.any() and (evaluation.attempts == 1).all()
    assert evaluation.failures == 0 and evaluation.retries == 0 and evaluation.errors == (None,) * 7


@pytest.mark.parametrize("executor", BACK_ENDS, indirect=True)
def test_map_unordered_returns_every_result(executor):
    assert sorted(executor.map_unordered(simulators.square, range(9))) == [k * k for k in range(9)]


@pytest.mark.parametrize("executor", BACK_ENDS, indirect=True)
def test_map_unordered_raises_what_fn_raised_and_the_executor_works_on(executor):
    with pytest.raises(ValueError, match="sample 2 is outside"):
        list(executor.map_unordered(functools.partial(simulators.raises_on, bad=(2,)), indexed_samples(4)))
    assert sorted(executor.map_unordered(simulators.square, range(4))) == [0, 1, 4, 9]


@pytest.mark.parametrize("executor, chunk", [("in_process", 16), ("pool", 2), ("dask", 4)], indirect=["executor"])
def test_chunks_are_ceil_of_samples_over_chunks_per_worker(executor, chunk):
    """16 samples: one call in process; over 2 workers, chunks of ceil(16 / (4 * 2)) = 2 on the pool
    (4 chunks per worker) and ceil(16 / (2 * 2)) = 4 on Dask (2 per worker)."""
    evaluation = executor.evaluate(simulators.batch_size, np.zeros((16, 3)), batched=True)
    np.testing.assert_array_equal(evaluation.values[:, 0], np.full(16, chunk))


@pytest.mark.parametrize("executor", BACK_ENDS, indirect=True)
def test_a_transient_error_is_retried_and_then_succeeds(executor, tmp_path):
    samples = indexed_samples()
    fn = functools.partial(simulators.raises_once_on, bad=(1, 4), directory=str(tmp_path))
    evaluation = executor.evaluate(fn, samples, retries=1)
    np.testing.assert_array_equal(evaluation.values, loop(simulators.heat, samples))
    np.testing.assert_array_equal(evaluation.attempts, [1, 2, 1, 1, 2, 1, 1])
    assert evaluation.failures == 0 and evaluation.retries == 2
    assert "RuntimeError: transient fault on sample 4" in evaluation.errors[4] and evaluation.errors[0] is None


@pytest.mark.parametrize("executor", BACK_ENDS, indirect=True)
def test_a_sample_that_always_fails_is_marked_failed_after_its_retries(executor):
    samples = indexed_samples()
    evaluation = executor.evaluate(functools.partial(simulators.raises_on, bad=(2,)), samples, retries=2)
    np.testing.assert_array_equal(evaluation.failed, np.arange(7) == 2)
    np.testing.assert_array_equal(evaluation.attempts, [1, 1, 3, 1, 1, 1, 1])
    assert evaluation.failures == 1 and evaluation.retries == 2
    assert np.isnan(evaluation.values[2]).all()
    np.testing.assert_array_equal(np.delete(evaluation.values, 2, 0), np.delete(loop(simulators.heat, samples), 2, 0))
    assert "ValueError: sample 2 is outside" in evaluation.errors[2]


@pytest.mark.parametrize("executor", BACK_ENDS, indirect=True)
def test_nan_and_inf_outputs_are_failures(executor):
    samples = indexed_samples()
    evaluation = executor.evaluate(functools.partial(simulators.nonfinite_on, nan=1, inf=5), samples, retries=1)
    np.testing.assert_array_equal(evaluation.failed, np.isin(np.arange(7), [1, 5]))
    np.testing.assert_array_equal(evaluation.attempts, [1, 2, 1, 1, 1, 2, 1])
    assert evaluation.errors[1] == evaluation.errors[5] == "returned NaN/Inf"
    assert np.isnan(evaluation.values[[1, 5]]).all() and np.isfinite(np.delete(evaluation.values, [1, 5], 0)).all()


@pytest.mark.parametrize("executor", BACK_ENDS, indirect=True)
def test_an_overlong_evaluation_times_out_and_the_others_finish(executor):
    samples = indexed_samples()
    fn = functools.partial(simulators.sleeps_on, index=3, seconds=0.8)
    evaluation = executor.evaluate(fn, samples, retries=1, timeout=0.25)
    np.testing.assert_array_equal(evaluation.failed, np.arange(7) == 3)
    np.testing.assert_array_equal(evaluation.attempts, [1, 1, 1, 2, 1, 1, 1])
    assert evaluation.errors[3].startswith("timed out")
    np.testing.assert_array_equal(np.delete(evaluation.values, 3, 0), np.delete(loop(simulators.heat, samples), 3, 0))


@pytest.mark.parametrize("executor", ["in_process", "pool"], indirect=True)
def test_a_retry_after_a_timeout_can_succeed(executor, tmp_path):
    samples = indexed_samples()
    fn = functools.partial(simulators.sleeps_once_on, index=2, seconds=0.8, directory=str(tmp_path))
    evaluation = executor.evaluate(fn, samples, retries=1, timeout=0.25)
    np.testing.assert_array_equal(evaluation.values, loop(simulators.heat, samples))
    assert not evaluation.failed.any() and evaluation.retries == 1 and evaluation.errors[2].startswith("timed out")


def test_the_pool_kills_a_hung_evaluation(pool):
    """A call that would sleep a minute is killed at its limit; the pool then works on."""
    samples = indexed_samples()
    evaluation = pool.evaluate(functools.partial(simulators.sleeps_on, index=5, seconds=60), samples, timeout=0.5)
    np.testing.assert_array_equal(evaluation.failed, np.arange(7) == 5)
    assert evaluation.errors[5] == "timed out: killed after the 0.5 s limit"
    np.testing.assert_array_equal(pool.evaluate(simulators.heat, samples).values, loop(simulators.heat, samples))


def test_the_pool_survives_a_worker_that_dies(pool):
    samples = indexed_samples()
    evaluation = pool.evaluate(functools.partial(simulators.exits_on, index=4), samples, retries=1)
    np.testing.assert_array_equal(evaluation.failed, np.arange(7) == 4)
    np.testing.assert_array_equal(evaluation.attempts, [1, 1, 1, 1, 2, 1, 1])
    assert evaluation.errors[4] == "its worker process died (exit code 3)"
    np.testing.assert_array_equal(np.delete(evaluation.values, 4, 0), np.delete(loop(simulators.heat, samples), 4, 0))


def test_dask_abandons_a_chunk_past_its_allowance(dask):
    """Dask cannot interrupt a task: past timeout + grace the client gives up on it."""
    impatient = DaskExecutor(dask.client, grace=0.5)  # margins that a loaded machine does not eat into
    samples = indexed_samples(4)
    evaluation = impatient.evaluate(functools.partial(simulators.sleeps_on, index=0, seconds=4.0), samples,
                                    timeout=1.0)
    np.testing.assert_array_equal(evaluation.failed, np.arange(4) == 0)
    assert "abandoned" in evaluation.errors[0]
    np.testing.assert_array_equal(evaluation.values[1:], loop(simulators.heat, samples[1:]))


@pytest.mark.parametrize("executor", BACK_ENDS, indirect=True)
def test_a_batched_call_that_raises_is_retried_one_sample_at_a_time(executor):
    """The call holding sample 3 raises as a whole; the retries, one sample each, isolate it.
    In process the call is the whole batch (16 retries); over 2 workers the chunks are
    ceil(16 / 8) = 2 samples on the pool, so only samples 2 and 3 are retried, and ceil(16 / 4) = 4
    on Dask, so samples 0-3 are."""
    samples = indexed_samples(16)
    evaluation = executor.evaluate(functools.partial(simulators.batch_raises_on, bad=(3,)), samples, batched=True,
                                   retries=1)
    np.testing.assert_array_equal(evaluation.failed, np.arange(16) == 3)
    np.testing.assert_array_equal(np.delete(evaluation.values, 3, 0), np.delete(loop(simulators.heat, samples), 3, 0))
    retried = {InProcess: np.arange(16), ProcessPool: np.array([2, 3]), DaskExecutor: np.arange(4)}[type(executor)]
    np.testing.assert_array_equal(evaluation.attempts, 1 + np.isin(np.arange(16), retried))


def test_a_wrong_output_shape_is_a_failure_and_all_failed_needs_a_shape():
    samples = indexed_samples(3)
    evaluation = InProcess().evaluate(simulators.heat, samples, output_shape=(5,))
    assert evaluation.failed.all() and evaluation.values.shape == (3, 5) and np.isnan(evaluation.values).all()
    assert evaluation.errors[0] == "returned shape (6,), expected (5,)"
    with pytest.raises(ValueError, match="pass output_shape"):
        InProcess().evaluate(functools.partial(simulators.raises_on, bad=(0, 1, 2)), samples)


def test_the_pool_refuses_a_function_it_cannot_send(pool):
    with pytest.raises(TypeError, match="must be importable"):
        pool.evaluate(lambda x: x, indexed_samples(2))
    np.testing.assert_array_equal(pool.evaluate(simulators.heat, indexed_samples(2)).values,
                                  loop(simulators.heat, indexed_samples(2)))
