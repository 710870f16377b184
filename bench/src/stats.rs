//! Latency samples summed up as medians and tails.

use std::time::Duration;

use serde_json::{json, Value};

/// The p50 and p99 of `samples`, in milliseconds, with their count.
pub fn summary(mut samples: Vec<Duration>) -> Value {
    samples.sort_unstable();
    let pick = |q: f64| {
        if samples.is_empty() {
            return 0.0;
        }
        let index = ((samples.len() as f64 - 1.0) * q).round() as usize;
        round3(samples[index].as_secs_f64() * 1e3)
    };
    json!({ "count": samples.len(), "p50_ms": pick(0.50), "p99_ms": pick(0.99) })
}

/// Waits for writer tasks and sums up their latencies with the rate
/// (operations per second since `started`) under `rate_name`.
pub async fn collect(
    tasks: Vec<tokio::task::JoinHandle<Result<Vec<Duration>, String>>>,
    started: std::time::Instant,
    rate_name: &str,
) -> Result<Value, String> {
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.map_err(|e| e.to_string())??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut figures = summary(latencies);
    let count = figures["count"].as_u64().unwrap_or(0);
    figures[rate_name] = json!(round3(count as f64 / elapsed));
    Ok(figures)
}

/// Rounds to three decimals, for readable figures.
pub fn round3(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_nearest_rank() {
        let samples = (1..=100).map(Duration::from_millis).collect();
        let s = summary(samples);
        assert_eq!(
            (
                s["count"].as_u64(),
                s["p50_ms"].as_f64(),
                s["p99_ms"].as_f64()
            ),
            (Some(100), Some(51.0), Some(99.0))
        );
        assert_eq!(summary(Vec::new())["p99_ms"].as_f64(), Some(0.0));
    }
}
