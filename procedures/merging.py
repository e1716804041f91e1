"""Merging repeated reviews, on a working copy of a definition.

The repeated-review fix merges one pair at a time, the first pair (by the
later step's list position, then the earlier one's) whose merge does not
lengthen the lead time, and then looks again. Rebuilding a whole definition
for each merge would make that quadratic on large procedures, so
:class:`MergeState` keeps what a merge changes in place, and relies on a
property of the merge: it removes one step and makes that step's followers
wait for its own predecessors, so *which step is an ancestor of which* does
not change among the steps that remain. The ancestor and descendant bitsets of
the starting definition therefore stay valid once the removed steps are
masked out.

Which earlier review a later one may merge into is answered with one more
bitset per step, :attr:`MergeState.crossed`: the ancestors from which some
path reaches the step through a step of another role. It is carried along
the ``after`` graph like the ancestors themselves, and a merge changes it only
downstream of the merged step, as far as it changes. With it, each later
step's one pair (the latest qualifying earlier step) is a few bitwise
operations, whatever the number of steps between them.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Iterator

from .conditions import Condition
from .model import REVIEW_KINDS, Definition, Effect, Step, bits

_EPSILON = 1e-9


def review_key(step: Step) -> tuple[str, str, Condition | None]:
    """What two reviews must share to be one review repeated."""
    return step.role, step.kind, step.when


class MergeState:
    """A definition being changed by review merges (positions are those of
    the definition it started from)."""

    def __init__(self, defn: Definition) -> None:
        self.defn = defn
        n = len(defn.steps)
        self.steps: list[Step | None] = list(defn.steps)
        self.preds: list[list[int]] = [list(p) for p in defn.predecessors]
        self.followers: list[set[int]] = [set() for _ in range(n)]
        for i, ps in enumerate(self.preds):
            for p in ps:
                self.followers[p].add(i)
        self.returners: dict[int, set[int]] = {}
        for i, step in enumerate(defn.steps):
            for _, target in step.returns:
                self.returners.setdefault(defn.index[target], set()).add(i)
        self.alive = (1 << n) - 1
        self.rank = {i: r for r, i in enumerate(defn.order)}
        self._head_tail: tuple[list[float], list[float]] | None = None
        self.anc = defn.ancestors
        self.desc = defn.descendants
        self.readers = defn.reader_masks
        self.roles = defn.role_masks
        self.groups: dict[tuple[str, str, Condition | None], int] = {}
        self.reviews: list[int] = []
        for i, step in enumerate(defn.steps):
            if step.kind in REVIEW_KINDS:
                key = review_key(step)
                self.groups[key] = self.groups.get(key, 0) | (1 << i)
                if step.inputs:
                    self.reviews.append(i)
        self.crossed: list[int] = [0] * n
        """each step's ancestors from which some path reaches it through a
        step of another role than its own"""
        for i in defn.order:
            self.crossed[i] = self._crossed(i)

    def _crossed(self, v: int) -> int:
        role = self.step(v).role
        mask = 0
        for p in self.preds[v]:
            mask |= self.anc[p] if self.step(p).role != role else self.crossed[p]
        return mask

    def step(self, i: int) -> Step:
        step = self.steps[i]
        if step is None:
            raise KeyError(f"step at position {i} was merged away")
        return step

    def earlier_for(self, j: int) -> int | None:
        """The earlier review that review ``j`` repeats: of the remaining
        ancestors of the same role, kind and condition that read all ``j``
        reads and from which only that role leads to ``j``, the one latest
        in list order; None when there is none (or ``j`` was merged away)."""
        step = self.steps[j]
        if step is None or step.kind not in REVIEW_KINDS or not step.inputs:
            return None
        candidates = self.anc[j] & self.alive & self.groups[review_key(step)] & ~self.crossed[j]
        for doc in step.inputs:
            candidates &= self.readers.get(doc, 0)
        return candidates.bit_length() - 1 if candidates else None

    def pairs(self) -> Iterator[tuple[int, int]]:
        """``(earlier, later)`` mergeable reviews, one per later step, by the
        later step's position."""
        for j in self.reviews:
            i = self.earlier_for(j)
            if i is not None:
                yield i, j

    def head_tail(self) -> tuple[list[float], list[float]]:
        """For each remaining step, the longest way from the start to its end
        (head) and from its start to the end of the procedure (tail).

        Computed once, then kept up to date by :meth:`merge`, which changes
        only the steps a merge reaches and stops where nothing changed.
        """
        if self._head_tail is None:
            n = len(self.steps)
            head, tail = [0.0] * n, [0.0] * n
            alive, order = self.alive, self.defn.order
            for i in order:
                if alive >> i & 1:
                    head[i] = max((head[p] for p in self.preds[i]), default=0.0) + self.step(i).duration
            for i in reversed(order):
                if alive >> i & 1:
                    tail[i] = max((tail[f] for f in self.followers[i]), default=0.0) + self.step(i).duration
            self._head_tail = (head, tail)
        return self._head_tail

    def _refresh(self, heads_from: list[int], tails_from: list[int]) -> None:
        """Recompute head times downstream of ``heads_from`` and tail times
        upstream of ``tails_from``, in topological order, as far as they change."""
        if self._head_tail is None:
            return
        head, tail = self._head_tail
        rank = self.rank
        queue = [(rank[v], v) for v in set(heads_from)]
        heapq.heapify(queue)
        done: set[int] = set()
        while queue:
            _, v = heapq.heappop(queue)
            if v in done:
                continue
            done.add(v)
            value = max((head[p] for p in self.preds[v]), default=0.0) + self.step(v).duration
            if value != head[v] or v in heads_from:
                head[v] = value
                for f in self.followers[v]:
                    heapq.heappush(queue, (rank[f], f))
        queue = [(-rank[v], v) for v in set(tails_from)]
        heapq.heapify(queue)
        done.clear()
        while queue:
            _, v = heapq.heappop(queue)
            if v in done:
                continue
            done.add(v)
            value = max((tail[f] for f in self.followers[v]), default=0.0) + self.step(v).duration
            if value != tail[v] or v in tails_from:
                tail[v] = value
                for p in self.preds[v]:
                    heapq.heappush(queue, (-rank[p], p))

    def keeps_lead_time(self, first: int, again: int, head_tail: tuple[list[float], list[float]]) -> bool:
        """Whether merging ``again`` into ``first`` keeps the lead time.

        With ``first`` as long as ``again``, a path through both loses
        ``again`` and gets no longer; a path through neither does not change;
        so the lead time grows exactly when a path through ``first`` that
        avoids ``again`` becomes longer than it. Only the steps between the
        two (few: they share one role) need their longest way out recomputed
        without ``again``.
        """
        s1, s2 = self.step(first), self.step(again)
        if s2.duration <= s1.duration:
            return True
        head, tail = head_tail
        lead = max(head, default=0.0)
        between = self.desc[first] & self.anc[again] & self.alive
        avoiding: dict[int, float] = {}
        for v in reversed(self._in_order(between)):
            longest = 0.0
            for w in self.followers[v]:
                if w != again:
                    longest = max(longest, avoiding.get(w, tail[w]))
            avoiding[v] = self.step(v).duration + longest
        after_first = max((avoiding.get(f, tail[f]) for f in self.followers[first] if f != again), default=0.0)
        start = head[first] - s1.duration
        return start + s2.duration + after_first <= lead + _EPSILON

    def _in_order(self, mask: int) -> list[int]:
        positions = list(bits(mask))
        order = self.defn.order
        if order and order[-1] == len(order) - 1 and order == tuple(range(len(order))):
            return positions
        rank = {i: r for r, i in enumerate(order)}
        return sorted(positions, key=rank.__getitem__)

    def merge(self, first: int, again: int) -> list[int]:
        """Merge step ``again`` into its ancestor ``first``; returns the steps
        whose :attr:`crossed` bitset changed (only they may gain a pair).

        The first step takes the union of outputs, the longer duration, the
        larger effort, and the outcomes of the other whose effect it has
        under no name (except returns to a step that is not its ancestor; a
        name already used for another effect becomes ``NAME_2``, ``NAME_3``,
        ...). It keeps its own fee and visit. What came after the merged step
        now comes after that step's own ``after`` steps, and returns to it go
        to the first step.
        """
        s1, s2 = self.step(first), self.step(again)
        index = self.defn.index
        outcomes = list(s1.outcomes)
        labels = list(s1.outcome_labels)
        labels_of_s2 = dict(s2.outcome_labels)
        for name, effect in s2.outcomes:
            if any(e == effect for _, e in outcomes):
                continue
            if effect.kind == "return":
                target = index[effect.target] if effect.target is not None else -1
                if target < 0 or not self.anc[first] >> target & 1:
                    continue
                self.returners.setdefault(target, set()).add(first)
            taken = {n for n, _ in outcomes}
            new_name, k = name, 2
            while new_name in taken:
                new_name, k = f"{name}_{k}", k + 1
            outcomes.append((new_name, effect))
            if name in labels_of_s2:  # the decision keeps the words people read
                labels.append((new_name, labels_of_s2[name]))
        self.steps[first] = dataclasses.replace(
            s1,
            outputs=s1.outputs + tuple(o for o in s2.outputs if o not in s1.outputs),
            duration=max(s1.duration, s2.duration),
            effort=max(s1.effort, s2.effort),
            outcomes=tuple(outcomes),
            outcome_labels=tuple(labels),
        )
        for v in sorted(self.followers[again]):
            step = self.step(v)  # its 'after' loses the merged step
            after: list[str] = []
            preds: list[int] = []
            for a, p in zip(step.after, self.preds[v], strict=True):
                for b, q in zip(s2.after, self.preds[again], strict=True) if p == again else ((a, p),):
                    if q not in preds:
                        after.append(b)
                        preds.append(q)
            self.steps[v] = dataclasses.replace(step, after=tuple(after))
            self.preds[v] = preds
            for q in self.preds[again]:
                self.followers[q].add(v)
        for q in self.preds[again]:
            self.followers[q].discard(again)
        for v in sorted(self.returners.pop(again, set())):
            if v == again or self.steps[v] is None:
                continue
            step = self.step(v)
            self.steps[v] = dataclasses.replace(
                step,
                outcomes=tuple(
                    (n, Effect("return", s1.id) if e.kind == "return" and e.target == s2.id else e) for n, e in step.outcomes
                ),
            )
            self.returners.setdefault(first, set()).add(v)
        for _, returned_to in s2.returns:
            self.returners.get(index[returned_to], set()).discard(again)
        moved = sorted(self.followers[again])
        upstream = list(self.preds[again])
        self.steps[again] = None
        self.preds[again] = []
        self.followers[again] = set()
        self.alive &= ~(1 << again)
        self.crossed[again] = 0
        if self._head_tail is not None:
            self._head_tail[0][again] = self._head_tail[1][again] = 0.0
            self._refresh([first, *moved], [first, *upstream])
        return self._refresh_crossed(moved)

    def _refresh_crossed(self, start: list[int]) -> list[int]:
        """Recompute :attr:`crossed` downstream of ``start`` (whose ``after``
        changed), in topological order, as far as it changes; the steps whose
        value changed."""
        rank = self.rank
        queue = [(rank[v], v) for v in start]
        heapq.heapify(queue)
        done: set[int] = set()
        changed: list[int] = []
        while queue:
            _, v = heapq.heappop(queue)
            if v in done:
                continue
            done.add(v)
            value = self._crossed(v)
            if value != self.crossed[v]:
                self.crossed[v] = value
                changed.append(v)
                for f in self.followers[v]:
                    heapq.heappush(queue, (rank[f], f))
        return changed

    def definition(self) -> Definition:
        """The changed definition."""
        return dataclasses.replace(self.defn, steps=tuple(s for s in self.steps if s is not None))
