//! Phase timing: every scenario prints its phases with their durations.

use std::time::{Duration, Instant};

/// Times the phases of one test and prints each as it ends, plus a summary on drop.
pub struct Phases {
    test: String,
    done: Vec<(String, Duration)>,
    start: Instant,
}

impl Phases {
    pub fn new(test: &str) -> Self {
        Phases {
            test: test.to_string(),
            done: Vec::new(),
            start: Instant::now(),
        }
    }

    /// Run one phase, printing its duration whatever its outcome.
    pub fn run<T>(&mut self, name: &str, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let out = f();
        let d = t.elapsed();
        eprintln!("[{}] phase {name}: {:.1}s", self.test, d.as_secs_f64());
        self.done.push((name.to_string(), d));
        out
    }
}

impl Drop for Phases {
    fn drop(&mut self) {
        let list: Vec<String> = self
            .done
            .iter()
            .map(|(n, d)| format!("{n} {:.1}s", d.as_secs_f64()))
            .collect();
        let line = format!(
            "[{}] phases: {} | total {:.1}s",
            self.test,
            list.join(", "),
            self.start.elapsed().as_secs_f64()
        );
        eprintln!("{line}");
        println!("{line}");
    }
}
