"""Same-shaped runs trained together as one batched model (playground/cohort.py): each run steps
exactly as it would alone, with its own seed, data order, lr, betas, R1 and EMA."""

import time

import pytest
import torch
from torch.func import functional_call, stack_module_state, vmap

from playground.cohort import Cohort, cohort_key, stacked_sequential
from playground.models import copy_model
from playground.runs import Runner, TrainingPool
from playground.trainer import TrainConfig, make_trainer

# (seed, settings of its own): a class's runs differ in what each student set
RUNS = [(0, {}), (1, {"lr": 1e-3, "r1": 0.0}), (2, {"lr": 2e-4, "beta1": 0.9, "ema": 0.0})]


def _trainer(data, seed, **over):
    return make_trainer("gan", data, {"hidden": 32, **over}, TrainConfig(batch_size=32, seed=seed, device="cpu"))


def _alone(data, steps: list[int]) -> list:
    """Each run of RUNS trained alone for its number of steps."""
    out = []
    for (seed, over), n in zip(RUNS, steps):
        t = _trainer(data, seed, **over)
        for _ in range(n):
            t.step()
        out.append(t)
    return out


def _assert_same_weights(a, b, atol=1e-5):
    for (name, p), (_, q) in zip(a.model.named_parameters(), b.model.named_parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=atol, msg=f"{name} differs")
    for key in a.opts:
        for p, q in zip(a.opts[key].param_groups[0]["params"], b.opts[key].param_groups[0]["params"]):
            sa, sb = a.opts[key].state[p], b.opts[key].state[q]
            assert float(sa["step"]) == float(sb["step"])
            torch.testing.assert_close(sa["exp_avg"], sb["exp_avg"], rtol=1e-4, atol=atol)


def test_runs_that_differ_in_seed_lr_betas_r1_and_ema_share_a_cohort(ring8):
    keys = {cohort_key(_trainer(ring8, seed, **over)) for seed, over in RUNS}
    assert len(keys) == 1 and None not in keys
    assert cohort_key(_trainer(ring8, 0, hidden=64)) not in keys  # another shape steps apart


def test_models_a_cohort_cannot_stack_train_alone(ring8, digits):
    assert cohort_key(_trainer(ring8, 0, pack=2)) is None  # PacGAN: D judges packs of samples
    dc = make_trainer("gan", digits, {"arch": "dcgan", "d_norm": "batch", "channels": 8}, TrainConfig(batch_size=16))
    assert cohort_key(dc) is None  # batch norm: buffers that a stacked step would have to share
    assert cohort_key(make_trainer("vae", ring8)) is None  # a family without stacked_train_step


@pytest.mark.parametrize("data", ["ring8", "digits"])
def test_an_mlps_own_stacked_forward_gives_vmaps_numbers_and_gradients_in_the_weights_layout(data, request):
    """stacked_forward (feature-major batched products) against vmap over the nets themselves:
    the same outputs, input gradients (which R1 takes) and weight gradients, the latter already
    contiguous in each weight's (N, out, in) layout (Adam's fused kernel needs no copy)."""
    data = request.getfixturevalue(data)
    models = [_trainer(data, seed).model for seed in range(3)]
    for net, make_input in (("G", lambda: torch.randn(3, 5, models[0].config.latent_dim)),
                            ("D", lambda: torch.randn(3, 5, *data.sample_shape))):  # fmt: skip
        subs = [m.get_submodule(net) for m in models]
        params, _ = stack_module_state(subs)
        x = make_input().requires_grad_(True)
        own = subs[0].stacked_forward(params, x)
        ref = vmap(lambda p, a, m=subs[0]: functional_call(m, p, (a,)))(params, x)
        assert own.shape == ref.shape == (3, 5, *(data.sample_shape if net == "G" else ()))
        torch.testing.assert_close(own, ref, rtol=1e-5, atol=1e-6)
        weight = torch.randn_like(own)
        got = torch.autograd.grad((own * weight).sum(), [x, *params.values()])
        want = torch.autograd.grad((ref * weight).sum(), [x, *params.values()])
        for name, g, w in zip(["input", *params], got, want):
            torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5, msg=name)
            assert name == "input" or g.is_contiguous(), name
    with pytest.raises(TypeError, match="not Dropout"):
        stacked_sequential(torch.nn.Sequential(torch.nn.Dropout()), {}, torch.zeros(1, 1, 1))


def test_a_round_steps_each_run_as_it_would_alone(ring8):
    """The numbers, not just the shapes: three runs stepped together equal three runs stepped
    alone, including a round that one of them sits out (its weights must not move)."""
    together = [_trainer(ring8, seed, **over) for seed, over in RUNS]
    cohort = Cohort(cohort_key(together[0]))
    for t in together:
        cohort.join(t)
    steps = [0, 0, 0]
    for r in range(5):
        batch = together if r != 2 else together[:2]
        parts = cohort.step_together(batch)
        for i, t in enumerate(batch):
            steps[i] += 1
            assert set(parts[id(t)]) >= {"d_loss", "g_loss", "d_real", "d_fake", "value"}
    assert cohort.widest == 3 and cohort.rounds == 5
    alone = _alone(ring8, steps)
    for t, a in zip(together, alone):
        _assert_same_weights(t, a)
    last = alone[0].model.train_step(alone[0].next_batch, alone[0].opts, batch_size=32, generator=alone[0].generator)
    mine = cohort.step_together([together[0]])[id(together[0])]
    for k, v in last.items():
        assert isinstance(mine[k], float) and mine[k] == pytest.approx(v.item(), rel=1e-4, abs=1e-5), k


def _lanes(pool, trainer) -> list:
    return pool._cohorts.get(cohort_key(trainer), [])


def _start_paused(pool, trainers, **kwargs) -> list:
    """Runs of `trainers` in `pool` that have all joined their cohorts before any steps."""
    for t in trainers:
        t.pause()
    runs = [Runner(t, pool, lease=None, report_every=0.01, **kwargs) for t in trainers]
    deadline = time.monotonic() + 30
    while sum(c.joined for c in _lanes(pool, trainers[0])) < len(trainers) and time.monotonic() < deadline:
        time.sleep(0.01)
    for t in trainers:
        t.resume()
    return runs


def test_a_class_of_runs_trains_together_through_the_pool_and_ends_as_alone(ring8):
    """Three runs through the app's pool (one place to step: one cohort) share its rounds, and
    each ends with the weights it would have had alone, tensors of its own again (not views of
    a stack)."""
    pool = TrainingPool(3, stepping=1, batching=True)
    trainers = [_trainer(ring8, seed, **over) for seed, over in RUNS]
    runs = _start_paused(pool, trainers, steps=40)
    (cohort,) = _lanes(pool, trainers[0])
    for run in runs:
        assert run.wait(60)
        assert run.error is None
    assert cohort.widest >= 2 and cohort.rounds < 120  # steps were taken together
    assert all(t.step_count == 40 and t.cohort is None for t in trainers)
    assert not _lanes(pool, trainers[0])  # the empty cohort is gone
    for t, a in zip(trainers, _alone(ring8, [40, 40, 40])):
        _assert_same_weights(t, a, atol=5e-5)
    storages = [p.untyped_storage().data_ptr() for t in trainers for p in t.model.parameters()]
    assert len(set(storages)) == len(storages)


def test_a_class_is_spread_over_one_cohort_per_core_and_kept_even_as_runs_leave(ring8):
    """Two places to step: six runs make two cohorts of three (each round on one core). When
    two runs of one cohort stop, a run of the other moves over (2 and 2), and a moved run still
    steps exactly as it would alone."""
    pool = TrainingPool(6, stepping=2, batching=True)
    seeds = range(6)
    trainers = [_trainer(ring8, seed) for seed in seeds]
    runs = _start_paused(pool, trainers)
    lanes = _lanes(pool, trainers[0])
    assert sorted(c.joined for c in lanes) == [3, 3]
    a, b = lanes
    first_a = set(a._joined)
    _wait_for(lambda: all(t.step_count >= 10 for t in trainers))
    assert a.widest >= 2 and b.widest >= 2  # each cohort stepped its runs together
    gone = [r for r in runs if r.trainer in b._joined][:2]
    for r in gone:
        r.stop()
    _wait_for(lambda: sorted(c.joined for c in lanes) == [2, 2])
    (moved,) = first_a & set(b._joined)
    _wait_for(lambda: moved.step_count >= 30)
    for r in runs:
        r.stop()
    assert all(r.error is None for r in runs)
    for seed, t in zip(seeds, trainers):
        twin = _trainer(ring8, seed)
        for _ in range(t.step_count):
            twin.step()
        _assert_same_weights(t, twin, atol=5e-5)


def _wait_for(condition, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert condition()


def test_batching_off_steps_each_run_alone(ring8):
    pool = TrainingPool(2)  # the app's default
    t = _trainer(ring8, 0)
    assert pool.join_cohort(t) is None
    run = Runner(t, pool, lease=None, steps=5)
    assert run.wait(30) and t.step_count == 5


@pytest.mark.parametrize("sit_out", [False, True])
def test_a_run_whose_optimizer_state_was_replaced_is_copied_back_in(ring8, sit_out):
    """The NaN guard loads an older optimizer state (new tensors): the next round copies the
    run's own tensors back into its slice instead of stepping a stale copy."""
    a, b = _trainer(ring8, 0), _trainer(ring8, 1)
    twin = _trainer(ring8, 0)
    cohort = Cohort(cohort_key(a))
    for t in (a, b):
        cohort.join(t)
    cohort.step_together([a, b])
    twin.step()
    state = {k: o.state_dict() for k, o in a.opts.items()}
    for k, o in a.opts.items():
        o.load_state_dict(state[k])  # new tensors, same numbers
    if sit_out:
        cohort.step_together([b])
    cohort.step_together([a, b])
    twin.step()
    _assert_same_weights(a, twin)


def test_copies_of_a_member_hold_only_its_own_numbers(ring8):
    """A member's weights view one slice of a class's stack: Explore's and Inspect's copies of
    its model and the NaN guard's snapshots must copy that slice, not all thirty."""
    ts = [_trainer(ring8, seed) for seed in range(4)]
    cohort = Cohort(cohort_key(ts[0]))
    for t in ts:
        cohort.join(t)
    cohort.step_together(ts)
    p = ts[1].model.D.net[0].weight
    assert p.untyped_storage().nbytes() == 4 * p.nbytes  # a view of the stack
    copied = copy_model(ts[1].model)
    for a, b in zip(copied.parameters(), ts[1].model.parameters()):
        assert a.untyped_storage().nbytes() == a.nbytes and torch.equal(a, b)
    ts[1]._take_snapshot()
    _, weights, opts = ts[1]._snapshot
    assert all(w.untyped_storage().nbytes() == w.nbytes for w in weights.values())
    assert all(v.untyped_storage().nbytes() == v.nbytes for o in opts.values() for st in o["state"].values() for v in st.values())


def test_a_run_that_finds_company_while_holding_the_only_turn_goes_on(ring8):
    """A run alone steps in turns; when a second joins its cohort, it must not wait for a round
    while holding the turn the cohort's thread needs (one turn: a 1-core server)."""
    pool = TrainingPool(2, stepping=1, batching=True)
    a = Runner(_trainer(ring8, 0), pool, lease=None)
    a.wait_stepped(30)
    b = Runner(_trainer(ring8, 1), pool, lease=None)
    b.wait_stepped(30)
    start = (a.trainer.step_count, b.trainer.step_count)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (a.trainer.step_count > start[0] + 20 and b.trainer.step_count > start[1] + 20):
        time.sleep(0.05)
    for run in (a, b):
        run.stop()
    assert a.trainer.step_count > start[0] + 20 and b.trainer.step_count > start[1] + 20
    assert a.error is None and b.error is None
