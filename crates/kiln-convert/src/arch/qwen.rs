//! `qwen2`, `qwen3` (per-head q/k norms) and their mixtures of experts `qwen2moe` (with a
//! gated shared expert) and `qwen3moe`. Rope stays in Hugging Face's layout (NEOX).

use crate::arch::decoder::{attention, embeddings_and_head, gated_ffn, stacked_experts, Dims, RopeLayout};
use crate::arch::{base_metadata, set_u32, Mapper};
use crate::config::HfConfig;
use crate::error::ConvertError;
use crate::plan::ModelPlan;

pub(crate) fn plan(arch: &str, config: &HfConfig, m: &mut Mapper) -> Result<ModelPlan, ConvertError> {
    let d = Dims::read(config)?;
    let mut plan = ModelPlan::default();
    base_metadata(&mut plan, arch, config)?;
    let moe = arch.ends_with("moe");
    if moe {
        let expert_ff = config.opt_u32("moe_intermediate_size")?;
        set_u32(&mut plan, format!("{arch}.expert_feed_forward_length"), expert_ff);
        let shared_ff = config.opt_u32("shared_expert_intermediate_size")?;
        set_u32(&mut plan, format!("{arch}.expert_shared_feed_forward_length"), shared_ff);
    }
    embeddings_and_head(&mut plan, m, config, &d)?;
    for b in 0..d.n_layer {
        attention(&mut plan, m, &d, b, RopeLayout::AsStored)?;
        let mlp = format!("model.layers.{b}.mlp");
        // Qwen 3 MoE may keep some layers dense (`mlp_only_layers`); the router says which.
        if moe && m.has(&format!("{mlp}.gate.weight")) {
            let n_expert = config.u32("num_experts")?;
            let gg = |s: &str| format!("blk.{b}.{s}");
            m.tensor(
                &mut plan,
                &format!("{mlp}.gate.weight"),
                &gg("ffn_gate_inp.weight"),
                &[n_expert.into(), d.hidden],
            )?;
            stacked_experts(&mut plan, m, b, n_expert, |x, part| format!("{mlp}.experts.{x}.{part}_proj.weight"))?;
            if let Some(shared_ff) = config.opt_u32("shared_expert_intermediate_size")? {
                gated_ffn(&mut plan, m, &d, b, "mlp.shared_expert", "_shexp", shared_ff.into())?;
                let gate = format!("{mlp}.shared_expert_gate.weight");
                m.tensor(&mut plan, &gate, &gg("ffn_gate_inp_shexp.weight"), &[1, d.hidden])?;
            }
        } else {
            gated_ffn(&mut plan, m, &d, b, "mlp", "", config.u32("intermediate_size")?.into())?;
        }
    }
    Ok(plan)
}
