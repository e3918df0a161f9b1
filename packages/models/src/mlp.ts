// The dense SwiGLU MLP of Llama / Qwen: down_proj(silu(gate_proj(x)) * up_proj(x)).
import { nn, swiglu, type Tensor } from '@omnitrain/core';

/** A dense SwiGLU MLP with Hugging Face names `gate_proj`, `up_proj`, `down_proj`. */
export class Mlp extends nn.Module {
  gateProj: nn.Linear;
  upProj: nn.Linear;
  downProj: nn.Linear;

  constructor(hidden: number, intermediate: number, opts: nn.LayerOptions & { bias?: boolean } = {}) {
    super();
    this.gateProj = this.registerModule('gate_proj', new nn.Linear(hidden, intermediate, opts));
    this.upProj = this.registerModule('up_proj', new nn.Linear(hidden, intermediate, opts));
    this.downProj = this.registerModule('down_proj', new nn.Linear(intermediate, hidden, opts));
  }

  override forward(x: Tensor): Tensor {
    return this.downProj.call(swiglu(this.gateProj.call(x), this.upProj.call(x)));
  }
}
