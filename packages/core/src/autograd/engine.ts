import { keep, tidy } from '../memory.js';
import { sameShape } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { accumulateInto, castTo, onesLikeOf, sumToShape } from './engine-ops.js';
import { noGrad } from './grad-mode.js';
import type { GradHook, GradNode } from './node.js';

function applyHooks(hooks: readonly GradHook[] | undefined, grad: Tensor): Tensor {
  let g = grad;
  for (const h of hooks ?? []) g = h(g) ?? g;
  return g;
}

/** Nodes reachable from the roots, with how many edges point at each. */
function countDependencies(roots: GradNode[]): Map<GradNode, number> {
  const deps = new Map<GradNode, number>();
  const stack = [...new Set(roots)];
  for (const r of stack) deps.set(r, 0);
  const seen = new Set(stack);
  while (stack.length) {
    const n = stack.pop()!;
    for (const e of n.next) {
      if (!e || !('node' in e)) continue;
      deps.set(e.node, (deps.get(e.node) ?? 0) + 1);
      if (!seen.has(e.node)) {
        seen.add(e.node);
        stack.push(e.node);
      }
    }
  }
  return deps;
}

/**
 * Backpropagate from `roots` (scalars unless `grads` are given). Walks the tape in reverse
 * dependency order, frees each node's saved tensors as soon as it ran, accumulates into leaf
 * `.grad` (in place when one exists) and runs tensor hooks and post-accumulate hooks.
 * Intermediate gradients are freed as soon as nothing refers to them.
 */
export function runBackward(roots: Tensor[], grads?: Tensor[]): void {
  noGrad(() =>
    tidy(() => {
      const buffers = new Map<GradNode, (Tensor | null)[]>();
      const uses = new Map<Tensor, number>(); // references from buffers
      const pinned = new Set<Tensor>(); // user-supplied or leaf grads: never freed here
      const ref = (t: Tensor, d: number) => uses.set(t, (uses.get(t) ?? 0) + d);
      const maybeFree = (t: Tensor | null) => {
        if (t && !pinned.has(t) && !(uses.get(t) ?? 0) && !t.isDisposed) t.dispose();
      };

      const deliver = (edge: { node: GradNode; index: number }, g: Tensor) => {
        const slots = buffers.get(edge.node) ?? new Array(edge.node.outputs.length).fill(null);
        buffers.set(edge.node, slots);
        const old = slots[edge.index];
        if (old) {
          const sum = accumulateInto(old, g);
          ref(old, -1);
          maybeFree(old);
          slots[edge.index] = sum;
          ref(sum, 1);
        } else {
          slots[edge.index] = g;
          ref(g, 1);
        }
      };

      const toLeaf = (leaf: Tensor, grad: Tensor) => {
        let g = applyHooks(leaf.leafHooks, grad);
        if (!sameShape(g.shape, leaf.shape)) {
          throw new Error(
            `autograd: gradient of shape ${JSON.stringify(g.shape)} for leaf ${leaf.name ?? `#${leaf.id}`} ` +
              `of shape ${JSON.stringify(leaf.shape)}`,
          );
        }
        if (leaf.grad) {
          leaf.grad = accumulateInPlace(leaf.grad, g);
        } else {
          // Take ownership only of a private buffer; anything shared is copied first.
          if (g.dtype !== leaf.dtype || g.storage.refCount > 1 || pinned.has(g) || (uses.get(g) ?? 0) > 0) {
            g = castTo(g, leaf.dtype, true);
          }
          pinned.add(g);
          leaf.grad = keep(g);
        }
        for (const h of leaf.postAccumulateHooks) h(leaf);
      };

      const rootNodes: GradNode[] = [];
      roots.forEach((root, i) => {
        if (!root.requiresGrad) throw new Error('backward: tensor does not require grad (no input requires grad?)');
        let g = grads?.[i];
        if (g) pinned.add(g);
        else {
          if (root.numel !== 1) {
            throw new Error(`backward: gradient can only be implied for scalars, got ${JSON.stringify(root.shape)}`);
          }
          g = onesLikeOf(root);
        }
        if (root.gradFn) {
          deliver({ node: root.gradFn, index: root.outputIndex }, g);
          rootNodes.push(root.gradFn);
        } else toLeaf(root, g);
      });

      const deps = countDependencies(rootNodes);
      const ready = [...new Set(rootNodes)].filter((n) => deps.get(n) === 0);
      while (ready.length) {
        const node = ready.pop()!;
        const slots = buffers.get(node) ?? new Array(node.outputs.length).fill(null);
        buffers.delete(node);
        const outGrads = slots.map((g, i) => (g ? applyHooks(node.outputHooks.get(i), g) : null));
        for (const h of node.preHooks) h(outGrads);
        // A node whose outputs received no gradient contributes none.
        let inGrads: (Tensor | null)[] = [];
        if (outGrads.some((g) => g)) inGrads = node.apply(outGrads);
        else node.release();
        node.next.forEach((edge, i) => {
          let g = inGrads[i] ?? null;
          if (!edge || !g) return;
          if ('leaf' in edge) {
            toLeaf(edge.leaf, g);
          } else {
            const want = edge.node.outputs[edge.index]!;
            if (!sameShape(g.shape, want.shape)) g = sumToShape(g, want.shape, node.name);
            deliver(edge, g);
          }
        });
        for (const g of slots) if (g) ref(g, -1);
        for (const g of [...slots, ...outGrads, ...inGrads]) maybeFree(g);
        for (const edge of node.next) {
          if (!edge || !('node' in edge)) continue;
          const left = deps.get(edge.node)! - 1;
          deps.set(edge.node, left);
          if (left === 0) ready.push(edge.node);
        }
      }
      // Nodes never reached (an output gradient that was never produced) still free their saved tensors.
      for (const n of deps.keys()) n.release();
    }),
  );
}

/** Add `g` into an existing leaf gradient in place and return it. */
function accumulateInPlace(dst: Tensor, g: Tensor): Tensor {
  accumulateInto(dst, g, true);
  return dst;
}
