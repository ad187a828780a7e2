//! How a run's report reads: its parameters in one line, the notes beside
//! its table, the terminal table and the Markdown one the docs embed. The
//! figures themselves are [`crate::report`]'s.

use comfy_table::{Cell, CellAlignment, Table, presets::UTF8_FULL_CONDENSED};

use crate::Transport;
use crate::config::Publish;
use crate::report::RunReport;

impl RunReport {
    /// The run's parameters in one line: N, M, the rate, I, T, D, the target.
    pub fn parameters(&self) -> String {
        let publish = match self.publish {
            Publish::Rate(rate) => format!("{rate}/s"),
            Publish::Burst => "burst".into(),
        };
        let rtt = if self.rtt_ms > 0.0 {
            format!(", R={} ms", self.rtt_ms)
        } else {
            String::new()
        };
        format!(
            "N={} per transport, M={} at {publish}, I={} s, T={} s{rtt}, D={:.1} s, {}",
            self.clients_per_transport,
            self.notifications,
            self.poll_interval_s,
            self.long_poll_timeout_s,
            self.duration_s,
            self.target
        )
    }

    /// What the run says beyond its table: connections cut, tasks left,
    /// the server process's CPU and memory.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.publish == Publish::Burst {
            for t in &self.transports {
                notes.push(format!(
                    "burst: {} delivered {} in {:.0} ms, {:.0} deliveries/s",
                    t.transport,
                    t.delivered,
                    t.latency_ms.max,
                    t.deliveries_per_second()
                ));
            }
        }
        if let (Some(load), [only]) = (&self.load, self.transports.as_slice()) {
            notes.push(format!(
                "server: {:.0} bytes per connection held, {:.2} µs of CPU per delivery",
                load.bytes_per_connection(),
                load.delivering_cpu_s * 1e6 / only.delivered.max(1) as f64
            ));
        }
        let disconnects: u64 = self.transports.iter().map(|t| t.disconnects).sum();
        if disconnects > 0 {
            let each: Vec<String> = self
                .transports
                .iter()
                .map(|t| format!("{} {}", t.transport, t.disconnects))
                .collect();
            notes.push(format!(
                "chaos: {disconnects} connections cut ({})",
                each.join(", ")
            ));
        }
        if let Some(left) = self.leftover_server_tasks {
            notes.push(format!(
                "server tasks left after the clients hung up: {left}"
            ));
        }
        if let Some(server) = &self.server {
            notes.push(format!(
                "server process: {:.2} CPU s during the run, RSS {} KiB at its end (peak {} KiB)",
                server.cpu_seconds, server.rss_kib, server.peak_rss_kib
            ));
        }
        if let Some(memory) = &self.memory {
            notes.push(format!(
                "server memory, settled: {} KiB idle before the wave, {} KiB after it ({})",
                memory.idle_before_kib,
                memory.settled_after_kib,
                if memory.returned() {
                    "returned to its baseline"
                } else {
                    "NOT returned to its baseline"
                }
            ));
        }
        notes
    }

    /// The terminal table: measured figures with the theory beside them.
    pub fn table(&self) -> String {
        let mut out = format!("{}: {}\n", self.name, self.parameters());
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
            "transport",
            "requests",
            "expected",
            "req/client/min",
            "req/delivered",
            "empty",
            "bytes up",
            "bytes down",
            "bytes/delivered",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "mean ms (expected)",
            "lost/dup/order",
        ]);
        for t in &self.transports {
            let expected_mean = t
                .theory
                .mean_latency_ms
                .map_or(String::new(), |m| format!(" ({m:.0})"));
            table.add_row(vec![
                Cell::new(t.transport),
                right(t.requests.to_string()),
                right(format!(
                    "{}{:.0}",
                    t.theory.requests_mark(),
                    t.theory.requests
                )),
                right(format!("{:.1}", t.requests_per_client_per_minute)),
                right(format!("{:.2}", t.requests_per_delivered)),
                right(t.empty_responses.to_string()),
                right(t.bytes_up.to_string()),
                right(t.bytes_down.to_string()),
                right(format!("{:.0}", t.bytes_per_delivered)),
                right(format!("{:.1}", t.latency_ms.p50)),
                right(format!("{:.1}", t.latency_ms.p90)),
                right(format!("{:.1}", t.latency_ms.p99)),
                right(format!("{:.1}", t.latency_ms.max)),
                right(format!("{:.1}{expected_mean}", t.latency_ms.mean)),
                right(format!("{}/{}/{}", t.missing, t.duplicated, t.out_of_order)),
            ]);
        }
        out.push_str(&table.to_string());
        for note in self.notes() {
            out.push('\n');
            out.push_str(&note);
        }
        out.push('\n');
        out
    }

    /// The figures as a Markdown table, for the docs.
    pub fn markdown(&self) -> String {
        let publish = match self.publish {
            Publish::Rate(rate) => format!("{rate}/s"),
            Publish::Burst => "a burst".into(),
        };
        let rtt = if self.rtt_ms > 0.0 {
            format!(", R = {} ms of round trip per client", self.rtt_ms)
        } else {
            String::new()
        };
        // The short poll's interval and the long poll's timeout, only
        // where a run has those transports.
        let has = |of: &[Transport]| self.transports.iter().any(|t| of.contains(&t.transport));
        let interval = if has(&[Transport::ShortPoll]) {
            format!(", I = {} s", self.poll_interval_s)
        } else {
            String::new()
        };
        let timeout = if has(&[Transport::LongPoll, Transport::LongPollPlain]) {
            format!(", T = {} s", self.long_poll_timeout_s)
        } else {
            String::new()
        };
        let mut out = format!(
            "N = {} clients per transport, M = {} notifications at {publish}{interval}{timeout}{rtt}, D = {:.1} s.\n\n",
            self.clients_per_transport, self.notifications, self.duration_s
        );
        out.push_str("| transport | requests (expected) | req/client/min | empty | bytes/delivered | p50 ms | p99 ms | mean ms (expected) | lost/dup/order |\n");
        out.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: |\n");
        for t in &self.transports {
            let expected_mean = t
                .theory
                .mean_latency_ms
                .map_or(String::new(), |m| format!(" ({m:.0})"));
            out.push_str(&format!(
                "| {} | {} ({}{:.0}) | {:.1} | {} | {:.0} | {:.1} | {:.1} | {:.1}{expected_mean} | {}/{}/{} |\n",
                t.transport,
                t.requests,
                t.theory.requests_mark(),
                t.theory.requests,
                t.requests_per_client_per_minute,
                t.empty_responses,
                t.bytes_per_delivered,
                t.latency_ms.p50,
                t.latency_ms.p99,
                t.latency_ms.mean,
                t.missing,
                t.duplicated,
                t.out_of_order
            ));
        }
        if let Some(server) = &self.server {
            out.push_str(&format!(
                "\nServer process: {:.2} CPU seconds during the run, {} KiB resident at the end.\n",
                server.cpu_seconds, server.rss_kib
            ));
        }
        out
    }
}

fn right(text: String) -> Cell {
    Cell::new(text).set_alignment(CellAlignment::Right)
}
