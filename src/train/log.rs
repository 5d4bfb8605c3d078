//! The records a run writes besides its evaluations: `train_log.jsonl` lines and
//! `summary.json`.

use std::time::Instant;

use serde_json::json;
use td3::{Event, Trainer};

/// The training log records of an event (none for evaluations, which go to
/// `evaluations.csv`).
pub fn records(event: &Event<'_>) -> Vec<serde_json::Value> {
    match event {
        Event::Episode {
            step,
            episode,
            episode_return,
            length,
        } => vec![json!({
            "type": "episode", "step": step, "episode": episode, "return": episode_return, "length": length,
        })],
        Event::Iteration { step, report } => {
            let mut out = Vec::new();
            if report.iteration % 1000 == 0 {
                let mut losses = json!({
                    "type": "losses", "step": step, "iteration": report.iteration,
                    "critic_loss": report.critic_loss, "actor_loss": report.actor_loss,
                });
                if let Some(alpha) = report.alpha {
                    losses["alpha"] = json!(alpha);
                }
                out.push(losses);
            }
            for (network, stats) in &report.evolutions {
                out.push(json!({
                    "type": "evolution", "step": step, "iteration": report.iteration, "network": network,
                    "moved": stats.removed(), "zeros": stats.removed_zeros(),
                    "regrown": stats.layers.iter().map(|l| l.added).sum::<usize>(),
                    "mean_abs_removed": stats.mean_abs_removed(),
                    "fraction_removed_were_new": stats.fraction_removed_were_new(),
                }));
            }
            out
        }
        Event::Buffer {
            step,
            distance,
            dropped,
            size,
        } => vec![json!({
            "type": "buffer", "step": step, "distance": distance, "dropped": dropped, "size": size,
        })],
        Event::Evaluation(_) => Vec::new(),
    }
}

/// The summary of a finished run; `started` is when and at which step this session began, and
/// `evolution` the network evolutions of this session and the seconds they took.
pub fn summary(
    trainer: &Trainer,
    started: (Instant, u64),
    evolution: (u64, f64),
) -> serde_json::Value {
    let evals = trainer.evaluations();
    let last: Vec<f64> = evals.iter().rev().take(10).map(|e| e.mean).collect();
    let final_score = (!last.is_empty()).then(|| last.iter().sum::<f64>() / last.len() as f64);
    let agent = trainer.agent();
    let (online, targets) = agent.memory();
    let session = started.0.elapsed().as_secs_f64();
    json!({
        "config": trainer.config(),
        "steps": trainer.step(),
        "final_score": final_score,
        "final_score_evaluations": last.len(),
        "best_evaluation": evals.iter().map(|e| e.mean).fold(f64::NEG_INFINITY, f64::max),
        "wall_seconds": trainer.wall_seconds(),
        "steps_per_second_session": (trainer.step() - started.1) as f64 / session.max(1e-9),
        "evolution_session": {
            "network_evolutions": evolution.0,
            "seconds": evolution.1,
            "seconds_per_evolution": (evolution.0 > 0).then(|| evolution.1 / evolution.0 as f64),
            "share_of_session": evolution.1 / session.max(1e-9),
        },
        "flops": agent.flops(),
        "live_connections": agent.live_connections(),
        "memory_bytes": {
            "networks": online.values + online.col_indices + online.row_ptrs + online.biases,
            "gradients": online.gradients,
            "optimizer": online.optimizer,
            "targets": targets.total(),
            "replay_buffer": trainer.replay().bytes(),
        },
    })
}
