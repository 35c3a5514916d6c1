"""Same-shaped runs trained together as one batched model: thirty small steps become one large one.

In a lesson, a class trains thirty copies of the same small model (a GAN on ring8, say), each
with its own seed and learning rate. Stepped one after another, each step is a few hundred small
kernel calls and the machine spends its time in Python and the dispatcher. A `Cohort` steps
them together instead: the weights and Adam states of its members are stacked along a new first
dimension (`torch.func.stack_module_state`), each member's own parameters and optimizer states
become views of its slice (so the app, checkpoints and Explore see every step at once, with no
copying), and the family's `stacked_train_step` runs its nets over all members at once with
`torch.func.vmap` + `functional_call`. Each member keeps its own data, seed, latents, learning
rate and Adam betas, and steps exactly as it would alone (within float rounding: tested).

Runs join a cohort through the app's training pool when they start, and leave when they end.
The pool keeps one cohort of a shape per core, each stepping its rounds on one PyTorch thread
(`TrainingPool.join_cohort`): two rounds of fifteen side by side make more steps than one round
of thirty on both cores, whose tensors outgrow the caches (bench/bench_cohort.py).
Each member's thread still runs its own loop (reports, pause, stop, lease); its `Trainer.step`
hands the step to the cohort's thread and waits for it. The cohort's thread gathers the members
that are waiting (a short wait for the rest of the previous round), steps them together, and
hands each its own numbers back; a member that sits out a round (paused, drawing a picture)
is not changed by it, and one that sits out for a few seconds is let go (its tensors become its
own again) so that it costs nothing until it steps again.

A family can be stacked when it declares `stacked_nets` (the submodules to stack) and
`stacked_train_step`, and `per_run_params` (the settings that may differ within one cohort; all
other settings must be equal). A net runs over the stacked weights through `vmap`, or through its
own `stacked_forward(params, *args)` where it declares one (an MLP's, `stacked_sequential`, is
about 14 % faster a round). A model whose nets hold buffers (batch norm, spectral norm) or
whose optimizer does more than plain Adam trains alone.
"""

from __future__ import annotations

import contextlib
import copy
import threading
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from torch.optim.adam import adam as adam_step

# how long a round waits for the members of the previous round to come back: GATHER seconds, or
# this share of the last round's time when longer (a member that misses a round waits a whole
# round, and the round computed its slice for nothing)
GATHER = 0.01
GATHER_SHARE = 0.25
IDLE = 3.0  # seconds a member may sit out before its tensors are unstacked
LINGER = 5.0  # seconds an empty cohort's thread waits for a new member before it ends


# ---------------------------------------------------------------------------------------------
# Which runs can share a batch


def cohort_key(trainer) -> tuple | None:
    """What runs must share to step together (None: this one trains alone): the family and every
    setting but its `per_run_params`, the batch and sample shape, dtype and device; nets without
    buffers; plain Adam, one parameter group, no weight decay."""
    model = trainer.model
    nets = getattr(model, "stacked_nets", None)
    if not nets or not hasattr(model, "stacked_train_step") or not getattr(model, "stackable", True):
        return None
    if any(True for name in nets for _ in model.get_submodule(name).buffers()):
        return None
    for opt in trainer.opts.values():
        group = opt.param_groups
        if type(opt) is not torch.optim.Adam or len(group) != 1:
            return None
        g = group[0]
        if g["weight_decay"] or g["amsgrad"] or g["maximize"] or not isinstance(g["lr"], float):
            return None
    per_run = set(model.per_run_params)
    shared = tuple(sorted((k, repr(v)) for k, v in model.config.to_dict().items() if k not in per_run))
    return (type(model), shared, trainer.batch_size, tuple(trainer.x.shape[1:]), trainer.x.dtype, str(trainer.device))


# ---------------------------------------------------------------------------------------------
# The stacked weights


def stacked_sequential(seq: nn.Sequential, params: dict[str, torch.Tensor], x: torch.Tensor, prefix: str = "") -> torch.Tensor:
    """`seq`'s forward for N stacked weight sets at once: x (N, B, in) -> (N, B, out), with
    `params` {name: (N, *shape)} (`prefix`: seq's own name in them), for an MLP of Linear layers
    and ReLU, LeakyReLU or Tanh between them.

    vmap's `linear` is a batched product and an add, and its weight gradients come out transposed
    (Adam's fused kernel then needs a copy of each). Here the activations run feature-major,
    (N, features, B): each layer is one `baddbmm` (W h + b, the bias inside the product), and each
    weight's gradient, grad_out @ h^T, comes out in the weight's own layout. The numbers are
    nn.Linear's up to float rounding (tests/test_cohort.py)."""
    h = x.transpose(1, 2)
    for i, layer in enumerate(seq):
        if isinstance(layer, nn.Linear):
            weight, bias = params[f"{prefix}{i}.weight"], params.get(f"{prefix}{i}.bias")
            h = torch.bmm(weight, h) if bias is None else torch.baddbmm(bias.unsqueeze(2), weight, h)
        elif isinstance(layer, nn.ReLU):
            h = torch.relu(h)
        elif isinstance(layer, nn.LeakyReLU):
            h = F.leaky_relu(h, layer.negative_slope)
        elif isinstance(layer, nn.Tanh):
            h = torch.tanh(h)
        else:
            raise TypeError(f"stacked_sequential runs Linear, ReLU, LeakyReLU and Tanh layers, not {type(layer).__name__}")
    return h.transpose(1, 2)


class Stack:
    """The nets and Adam states of N models as stacked tensors, each model's own viewing its slice.

    `call(net, *args)` runs net `net` of every model at once: args have a leading model
    dimension (N, ...) and so does the result. `params[net]` are the stacked leaves the
    gradients are taken with respect to; `adam(key, grads, live)` steps optimizer `key` of each
    live model, its own."""

    def __init__(self, trainers: list, nets: tuple[str, ...]):
        self.trainers = list(trainers)
        self.nets = nets
        self.n = len(self.trainers)
        models = [t.model for t in self.trainers]
        self.device = trainers[0].device
        self.params: dict[str, dict[str, torch.Tensor]] = {}
        self._calls: dict[str, Callable] = {}
        for name in nets:
            subs = [m.get_submodule(name) for m in models]
            trained = any(p.requires_grad for p in subs[0].parameters())
            params, _ = stack_module_state(subs)  # copies: {name: (N, *shape)}, requiring grad
            self.params[name] = {k: v.requires_grad_(trained) for k, v in params.items()}
            # the shape of the computation only: a copy on the meta device (its weights, views of
            # a stack, would otherwise copy the whole stack)
            template = copy.deepcopy(subs[0], {id(p): torch.nn.Parameter(torch.empty_like(p, device="meta")) for p in subs[0].parameters()})
            own = getattr(template, "stacked_forward", None)  # the net's own batched forward, if it has one
            self._calls[name] = own if own is not None else vmap(lambda p, *a, _t=template: functional_call(_t, p, a))
        # each optimizer's parameters as (net, name), in its own order, from the first model
        where = {id(p): (net, k) for net in nets for k, p in models[0].get_submodule(net).named_parameters()}
        self.opt_params = {key: [where[id(p)] for p in opt.param_groups[0]["params"]] for key, opt in trainers[0].opts.items()}
        self.opt_state = {key: {ref: self._stack_state(key, ref) for ref in refs} for key, refs in self.opt_params.items()}
        self._views: dict[str, list] = {}  # Adam's views of each model's slices (_adam_views)
        self._bound: list[tuple[list, list]] = [([], []) for _ in range(self.n)]  # what _bind pointed at
        for i in range(self.n):
            self._bind(i)

    # -- each model's tensors view its slice ----------------------------------------------------
    def _param(self, i: int, ref: tuple[str, str]) -> torch.nn.Parameter:
        return self.trainers[i].model.get_submodule(ref[0]).get_parameter(ref[1])

    def _stack_state(self, key: str, ref: tuple[str, str]) -> dict[str, torch.Tensor]:
        states = []
        for i, t in enumerate(self.trainers):
            p = self._param(i, ref)
            st = t.opts[key].state.get(p) or {}
            states.append((
                st["step"].float() if "step" in st else torch.zeros((), dtype=torch.float32, device=p.device),
                st["exp_avg"] if "exp_avg" in st else torch.zeros_like(p),
                st["exp_avg_sq"] if "exp_avg_sq" in st else torch.zeros_like(p),
            ))  # fmt: skip
        return {name: torch.stack([s[j].detach() for s in states]) for j, name in enumerate(("step", "exp_avg", "exp_avg_sq"))}

    def _bind(self, i: int) -> None:
        params, states = [], []
        for net in self.nets:
            for k, stacked in self.params[net].items():
                p = self._param(i, (net, k))
                p.data = stacked.detach()[i]
                params.append((p, p.data_ptr()))
        for key, refs in self.opt_params.items():
            opt = self.trainers[i].opts[key]
            for ref in refs:
                p = self._param(i, ref)
                st = {name: s[i] for name, s in self.opt_state[key][ref].items()}
                opt.state[p] = st
                states.append((opt, p, st["exp_avg"], st["exp_avg_sq"]))
        self._bound[i] = (params, states)

    def intact(self, i: int) -> bool:
        """Whether model i's tensors still view its slice (loading an optimizer's state, as the
        NaN guard does, puts new tensors in their place). Asked for every member of every round:
        pointers and identities only."""
        params, states = self._bound[i]
        if any(p.data_ptr() != ptr for p, ptr in params):
            return False
        for opt, p, avg, avg_sq in states:
            st = opt.state.get(p)  # (load_state_dict replaces opt.state itself: read it here)
            if st is None or st.get("exp_avg") is not avg or st.get("exp_avg_sq") is not avg_sq:
                return False
        return True

    @torch.no_grad()
    def resync(self, i: int) -> None:
        """Copy model i's own tensors into its slice and view them again."""
        for net in self.nets:
            for k, stacked in self.params[net].items():
                stacked[i].copy_(self._param(i, (net, k)).detach())
        for key, refs in self.opt_params.items():
            state = self.trainers[i].opts[key].state
            for ref in refs:
                st = state.get(self._param(i, ref)) or {}
                for name, s in self.opt_state[key][ref].items():
                    s[i].copy_(st[name] if name in st else torch.zeros_like(s[i]))
        self._bind(i)

    # -- computing with it ---------------------------------------------------------------------
    def call(self, net: str, *args: torch.Tensor) -> torch.Tensor:
        return self._calls[net](self.params[net], *args)

    def per_run(self, value: Callable[[object], float]) -> torch.Tensor:
        """(N,) float tensor of `value(model)` for each model (a setting that may differ)."""
        return torch.tensor([float(value(t.model)) for t in self.trainers], device=self.device)

    @torch.no_grad()
    def _put(self, dst: torch.Tensor, new: torch.Tensor, rows: torch.Tensor | None) -> None:
        """Write `new` into dst's rows `rows` (None: all): a model outside the round is never
        written, not even with its own values (its thread may be writing them)."""
        if rows is None:
            dst.copy_(new)
        else:
            dst.index_copy_(0, rows, new.index_select(0, rows))

    @torch.no_grad()
    def adam(self, key: str, grads: list[torch.Tensor], live: torch.Tensor) -> None:
        """Step optimizer `key` of every live model with its slice of the stacked gradients
        `grads`, as its own optimizer would (its lr, betas and eps, a live lr change included,
        and the same fused kernel: the numbers of a run alone): one kernel call for all the
        live models that share their settings, on the views of the stack their optimizers hold.
        A model that is not live is not touched."""
        grads = [g.contiguous().unbind(0) for g in grads]  # (the fused kernel reads a param's layout in its grad)
        views = self._adam_views(key)
        groups: dict[tuple, list[list[torch.Tensor]]] = {}
        for i in live.nonzero().flatten().tolist():
            g = self.trainers[i].opts[key].param_groups[0]
            lists = groups.setdefault((g["lr"], *g["betas"], g["eps"]), [[], [], [], [], []])
            params, exp_avg, exp_avg_sq, step = views[i]
            for out, ts in zip(lists, (params, [grad[i] for grad in grads], exp_avg, exp_avg_sq, step)):
                out.extend(ts)
        for (lr, beta1, beta2, eps), (params, grad, exp_avg, exp_avg_sq, step) in groups.items():
            adam_step(params, grad, exp_avg, exp_avg_sq, [], step, fused=True, amsgrad=False, beta1=beta1, beta2=beta2,
                                  lr=lr, weight_decay=0.0, eps=eps, maximize=False)  # fmt: skip

    def _adam_views(self, key: str) -> list[tuple[list[torch.Tensor], ...]]:
        """Each model's slices of optimizer `key`'s parameters and states, in its order: (params,
        exp_avg, exp_avg_sq, step) lists, made once per stack (they view it for its whole life)."""
        if key not in self._views:
            refs = self.opt_params[key]
            weights = [self.params[net][k].detach() for net, k in refs]
            states = [self.opt_state[key][ref] for ref in refs]
            self._views[key] = [([w[i] for w in weights], *([s[name][i] for s in states] for name in ("exp_avg", "exp_avg_sq", "step")))
                                for i in range(self.n)]  # fmt: skip
        return self._views[key]

    @torch.no_grad()
    def lerp(self, dst: str, src: str, weight: torch.Tensor, live: torch.Tensor) -> None:
        """dst's weights move toward src's by `weight` (N,) for the live models: an average."""
        live = live.cpu()
        rows = None if bool(live.all()) else live.nonzero().squeeze(1)
        for k, d in self.params[dst].items():
            w = weight.to(d.device, d.dtype).view((self.n,) + (1,) * (d.dim() - 1))
            if rows is None:
                d.lerp_(self.params[src][k], w)
            else:
                self._put(d, d.lerp(self.params[src][k], w), rows.to(d.device))


@torch.no_grad()
def own_tensors(trainer, nets: tuple[str, ...]) -> None:
    """Give a trainer's weights and optimizer states that view a bigger tensor (a stack, the
    current one or an older one it was left viewing) storage of their own."""

    def owned(t: torch.Tensor) -> torch.Tensor:
        return t.clone() if t.untyped_storage().nbytes() > t.nbytes else t

    for net in nets:
        for p in trainer.model.get_submodule(net).parameters():
            p.data = owned(p.data)
    for opt in trainer.opts.values():
        for p, st in list(opt.state.items()):
            opt.state[p] = {k: owned(v) if isinstance(v, torch.Tensor) else v for k, v in st.items()}


# ---------------------------------------------------------------------------------------------
# The cohort: one thread steps its members together


class Cohort:
    """Runs with the same `cohort_key`, stepped together by one thread of their own.

    A run `join`s when it starts and `leave`s when it ends (its tensors become its own again).
    While two or more have joined (`shared`), `step(trainer)` (called by `Trainer.step` in the
    member's own thread) waits for the next round that includes it and returns its parts.
    `around_step` is a context manager the thread holds around each round (the pool's turns,
    so that other runs share the cores fairly); `threads` is how many PyTorch threads a round
    may use (a number, or a function of the cohort asked before each round).

    One rule keeps every member's tensors whole: the cohort's thread writes or re-points a
    member's tensors only while that member cannot: its thread waits in `step` for the round,
    or the cohort holds the member's `Trainer.lock` (which its thread holds around everything it
    does to its weights). A member busy on its own is left where it is until it asks."""

    def __init__(self, key: tuple, around_step: Callable | None = None, threads: int | Callable[[Cohort], int] | None = None,
                 on_empty: Callable[[Cohort], None] | None = None):  # fmt: skip
        self.key = key
        self.around_step = around_step
        self.threads = threads
        self.on_empty = on_empty
        self.rounds = 0  # rounds stepped so far, and the most members one of them had
        self.widest = 0
        self._cond = threading.Condition()
        self._compute = threading.Lock()  # held while a round or a leaving member changes the stack
        self._joined: list = []  # the runs of this cohort (they may or may not be stacked yet)
        self._waiting: list = []  # trainers asking for a step, in the order they asked
        self._results: dict[int, dict | BaseException] = {}
        self._last_round: set[int] = set()
        self._round_seconds = 0.0  # how long the last round took
        self._last_seen: dict[int, float] = {}
        self._stack: Stack | None = None
        self._thread: threading.Thread | None = None

    @property
    def joined(self) -> int:
        """How many runs have joined."""
        return len(self._joined)

    @property
    def shared(self) -> bool:
        """Whether more than one run has joined (alone, a run steps faster on its own)."""
        return len(self._joined) > 1

    # -- the members' side ---------------------------------------------------------------------
    def join(self, trainer) -> None:
        with self._cond:
            if trainer not in self._joined:
                self._joined.append(trainer)

    def forget(self, trainer) -> None:
        """`trainer` no longer counts as a member (`leave` gives it its tensors back)."""
        with self._cond:
            if trainer in self._joined:
                self._joined.remove(trainer)

    def leave(self, trainer) -> None:
        """`trainer` leaves; its tensors become its own again (after a round in progress)."""
        self.forget(trainer)
        with self._compute, trainer.lock:
            own_tensors(trainer, type(trainer.model).stacked_nets)  # its slot in the stack goes at the next restack
            self._last_seen.pop(id(trainer), None)
            empty = not self._joined
            if empty:
                self._stack = None  # nobody left to step: let go of the stack (and every trainer in it)
        if empty and self.on_empty is not None:
            self.on_empty(self)

    def step(self, trainer) -> dict[str, float]:
        """One training step of `trainer` (holding its lock), taken in the next round; its parts."""
        me = id(trainer)
        with self._cond:
            self._waiting.append(trainer)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, daemon=True, name="playground-cohort")
                self._thread.start()
            self._cond.notify_all()
            while me not in self._results:
                self._cond.wait()
            out = self._results.pop(me)
        if isinstance(out, BaseException):
            raise out
        return out

    # -- the cohort's thread ---------------------------------------------------------------------
    def _loop(self) -> None:
        from .runs import lower_priority  # the pool's helper (runs imports this module)

        lower_priority()
        threads = None
        while True:
            with self._cond:
                if not self._gather():
                    self._thread = None  # a later step() starts another
                    return
                batch, self._waiting = self._waiting, []
            wanted = self.threads(self) if callable(self.threads) else self.threads
            if wanted and wanted != threads:
                threads = wanted
                torch.set_num_threads(threads)
            try:
                with self.around_step() if self.around_step is not None else contextlib.nullcontext():
                    results = self.step_together(batch)
            except BaseException as e:  # every member of the round hears of it
                results = {id(t): e for t in batch}
            with self._cond:
                self._results.update(results)
                self._cond.notify_all()

    def _gather(self) -> bool:
        """Wait (holding the condition) for members asking for a step, then a moment for the
        rest of the last round; False when nobody asked for LINGER seconds."""
        end = time.monotonic() + LINGER
        while not self._waiting:
            left = end - time.monotonic()
            if left <= 0:
                return False
            self._cond.wait(left)
        deadline = time.monotonic() + max(GATHER, GATHER_SHARE * self._round_seconds)
        while not self._last_round <= {id(t) for t in self._waiting}:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._cond.wait(left)
        return True

    def step_together(self, batch: list) -> dict[int, dict]:
        """One round: a whole step of each trainer in `batch` (same cohort key; each waiting in
        `step`, or a test's own), taken together; {id(trainer): its parts, as Python floats
        (read once for the round here, not by each member's thread: they come back sooner)}."""
        with self._compute, contextlib.ExitStack() as held:
            now = time.monotonic()
            for t in batch:
                self._last_seen[id(t)] = now
            stack = self._stack
            members = stack.trainers if stack is not None else []
            asked = {id(t) for t in batch}
            # the members outside the round whose tensors the cohort may touch: not busy on their own
            free = [t for t in members if id(t) not in asked and t.lock.acquire(blocking=False)]
            for t in free:
                held.callback(t.lock.release)
            free_ids = {id(t) for t in free}
            keep = [t for t in members if id(t) in asked or (id(t) in free_ids and t in self._joined
                                                             and now - self._last_seen.get(id(t), now) <= IDLE)]  # fmt: skip
            new = [t for t in batch if t not in members]
            if new or len(keep) < len(members):  # restack: newcomers in; the departed, idle and busy out
                for t in members:
                    if t not in keep and id(t) in free_ids:
                        own_tensors(t, stack.nets)  # (a busy member keeps viewing the old stack until it asks)
                        self._last_seen.pop(id(t), None)
                stack = self._stack = Stack([*keep, *new], type(batch[0].model).stacked_nets)
            for i, t in enumerate(stack.trainers):
                if id(t) in asked and not stack.intact(i):
                    stack.resync(i)
            live = torch.tensor([id(t) in asked for t in stack.trainers])
            runs = [(t.next_batch, t.generator) if id(t) in asked else None for t in stack.trainers]
            parts = type(batch[0].model).stacked_train_step(stack, runs, batch_size=batch[0].batch_size, live=live)
            self._last_round = asked
            self._round_seconds = time.monotonic() - now
            self.rounds += 1
            self.widest = max(self.widest, len(batch))
            numbers = {k: v.tolist() for k, v in parts.items()}
            return {id(t): {k: v[i] for k, v in numbers.items()} for i, t in enumerate(stack.trainers) if id(t) in asked}
