//! Benchmark of the supervisor's link services (run by `proxy.sh`, never as a test): ingress
//! throughput over the unix transport against a direct loopback TCP copy, added latency at a
//! fixed request rate, log records/s forwarded before drops start, and the services' RSS.
//!
//! The services run in a child process (this binary with `serve CONFIG`), so its RSS is theirs
//! alone; the fake enclave and the clients live in the parent.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use companion_config::*;
use enclave_link::logs::{Level, LogSender, LogStream};
use enclave_link::transport::Unix;
use enclave_link::Transport;
use enclave_supervisor::services::{ServiceMetrics, Services};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SINK_PORT: u32 = 8080;
const ECHO_PORT: u32 = 8081;
const CHUNK: usize = 64 * 1024;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    match args.get(1).map(String::as_str) {
        Some("serve") => rt.block_on(serve(Path::new(&args[2]))),
        _ => {
            let copy = if args.iter().any(|a| a == "--buffered") {
                ProxyCopy::Buffered
            } else {
                ProxyCopy::Splice
            };
            rt.block_on(bench(args.iter().any(|a| a == "--quick"), copy))
        }
    }
}

/// Child: the services, a metrics dump on `metrics` lines of stdin, exit on EOF.
async fn serve(config: &Path) {
    let config = SupervisorConfig::load(config).expect("config");
    let logs = std::fs::File::create(config.eif_path.with_extension("log")).expect("log file");
    tracing_subscriber::fmt().json().with_writer(logs).init();
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let metrics = Arc::new(ServiceMetrics::new());
    let services = Services::start(&config, tx, metrics.clone())
        .await
        .expect("start");
    for p in services.ingress_ports() {
        println!("ingress {} {}", p.vsock_port, p.local_addr);
    }
    println!("ready");
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    // Blocking stdin on its own thread: a line asks for the metrics, EOF ends the child.
    tokio::task::spawn_blocking(move || {
        for _ in std::io::stdin().lines().map_while(Result::ok) {
            let mut out = String::new();
            prometheus_client::encoding::text::encode(&mut out, &registry).expect("encode");
            println!("{out}END");
        }
    })
    .await
    .expect("stdin thread");
    services.shutdown().await;
}

struct Supervisor {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    ingress: Vec<(u32, SocketAddr)>,
}

impl Supervisor {
    fn start(dir: &Path, buffer_records: u32, proxy_copy: ProxyCopy) -> Supervisor {
        let config = SupervisorConfig {
            format_version: FORMAT_VERSION,
            deployment: "bench".into(),
            region: "us-east-1".into(),
            eif_path: dir.join("services.eif"),
            enclave: EnclaveResources {
                cpu_count: 2,
                memory_mib: 1024,
                cid: 16,
                debug: false,
            },
            listen: "127.0.0.1:8443".into(),
            watchdog: Watchdog {
                backoff_min_secs: 1,
                backoff_max_secs: 60,
                boot_grace_secs: 30,
                poll_interval_ms: 5000,
                stable_secs: 120,
            },
            proxies: [SINK_PORT, ECHO_PORT]
                .map(|p| Proxy {
                    protocol: "tcp".into(),
                    host_port: 0,
                    vsock_port: p,
                })
                .to_vec(),
            log_group: "bench".into(),
            logging: Logging {
                level: "info".into(),
                format: "json".into(),
            },
            link: Link {
                transport: LinkTransport::Unix {
                    listen_prefix: dir.join("parent"),
                    connect_prefix: dir.join("enclave"),
                },
                logs: LogService { buffer_records },
                ingress: IngressService {
                    listen: "127.0.0.1".into(),
                    max_connections: 2000,
                    ..IngressService::default()
                },
                proxy_copy,
                ..Link::default()
            },
            // Only the link services run here: no enclave, so no measurements.
            expected_measurements: None,
            state_dir: dir.join("state"),
            nitro_cli: NitroCli {
                describe_timeout_secs: 10,
                terminate_timeout_secs: 30,
                run_timeout_secs: None,
            },
            rollout: None,
        };
        let path = dir.join("supervisor.json");
        std::fs::write(&path, config.to_json()).expect("write config");
        let mut child = Command::new(std::env::current_exe().expect("exe"))
            .arg("serve")
            .arg(&path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn services");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut ingress = Vec::new();
        loop {
            let mut line = String::new();
            stdout.read_line(&mut line).expect("child output");
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["ingress", port, addr] => {
                    ingress.push((port.parse().unwrap(), addr.parse().unwrap()))
                }
                ["ready"] => break,
                _ => panic!("unexpected line from the services: {line:?}"),
            }
        }
        Supervisor {
            child,
            stdin,
            stdout,
            ingress,
        }
    }

    fn addr(&self, port: u32) -> SocketAddr {
        self.ingress
            .iter()
            .find(|(p, _)| *p == port)
            .expect("ingress port")
            .1
    }

    fn metric(&mut self, sample: &str) -> f64 {
        writeln!(self.stdin, "metrics").expect("ask for metrics");
        let mut value = 0.0;
        loop {
            let mut line = String::new();
            self.stdout.read_line(&mut line).expect("metrics");
            if line.trim() == "END" {
                return value;
            }
            if let Some((name, v)) = line.trim().rsplit_once(' ') {
                if name == sample {
                    value = v.parse().unwrap_or(0.0);
                }
            }
        }
    }

    /// (user, system) CPU seconds the services used so far.
    fn cpu_secs(&self) -> (f64, f64) {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        // Fields after the command name (which is in parentheses): utime and stime are the
        // 12th and 13th, in clock ticks.
        let rest = &stat[stat.rfind(')').expect("stat") + 2..];
        let field = |i: usize| rest.split(' ').nth(i).and_then(|v| v.parse::<f64>().ok());
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        (field(11).unwrap_or(0.0) / hz, field(12).unwrap_or(0.0) / hz)
    }

    /// (VmRSS, VmHWM) in MiB.
    fn rss(&self) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kib = |key: &str| {
            status
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
                / 1024.0
        };
        (kib("VmRSS:"), kib("VmHWM:"))
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The fake enclave's apps: a sink that answers one byte after EOF, and an echo.
async fn enclave_apps(transport: Arc<dyn Transport>) {
    let sink = transport.listen(SINK_PORT).await.expect("sink");
    let echo = transport.listen(ECHO_PORT).await.expect("echo");
    tokio::spawn(async move {
        while let Ok((s, _)) = sink.accept().await {
            tokio::spawn(drain_then_ack(s));
        }
    });
    tokio::spawn(async move {
        while let Ok((mut s, _)) = echo.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
}

async fn drain_then_ack<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(mut s: S) {
    let mut buf = vec![0u8; CHUNK];
    while let Ok(n) = s.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
    let _ = s.write_all(b"k").await;
}

/// Sends `total` bytes and waits for the sink's acknowledgement; returns MiB/s.
async fn throughput(addr: SocketAddr, total: u64) -> f64 {
    let mut c = TcpStream::connect(addr).await.expect("connect");
    c.set_nodelay(true).unwrap();
    let chunk = vec![0x5au8; CHUNK];
    let start = Instant::now();
    let mut sent = 0;
    while sent < total {
        c.write_all(&chunk).await.expect("write");
        sent += CHUNK as u64;
    }
    c.shutdown().await.unwrap();
    let mut ack = [0u8; 1];
    c.read_exact(&mut ack).await.expect("ack");
    sent as f64 / (1 << 20) as f64 / start.elapsed().as_secs_f64()
}

/// Round trips of 64 bytes at `rate`/s for `count` requests; returns sorted RTTs in µs.
async fn latencies(addr: SocketAddr, rate: u32, count: usize) -> Vec<f64> {
    let mut c = TcpStream::connect(addr).await.expect("connect");
    c.set_nodelay(true).unwrap();
    let req = [7u8; 64];
    let mut resp = [0u8; 64];
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        tick.tick().await;
        let t = Instant::now();
        c.write_all(&req).await.unwrap();
        c.read_exact(&mut resp).await.unwrap();
        out.push(t.elapsed().as_secs_f64() * 1e6);
    }
    out.sort_by(|a, b| a.total_cmp(b));
    out
}

/// Echoes 16 KiB round trips on `c` for `time`; returns how many.
async fn echo_for(mut c: TcpStream, time: Duration) -> u64 {
    let req = vec![3u8; 16 << 10];
    let mut resp = vec![0u8; req.len()];
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < time {
        let (mut r, mut w) = c.split();
        let (sent, got) = tokio::join!(w.write_all(&req), r.read_exact(&mut resp));
        sent.expect("write");
        got.expect("read");
        n += 1;
    }
    n
}

/// `median [min-max]` of `v`, with `digits` decimals.
fn spread(v: &mut [f64], digits: usize) -> String {
    v.sort_by(|a, b| a.total_cmp(b));
    let median = v[v.len() / 2];
    format!(
        "{median:.digits$} [{:.digits$}-{:.digits$}]",
        v[0],
        v[v.len() - 1]
    )
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

async fn direct_servers() -> (SocketAddr, SocketAddr) {
    let sink = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addrs = (sink.local_addr().unwrap(), echo.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((s, _)) = sink.accept().await {
            tokio::spawn(drain_then_ack(s));
        }
    });
    tokio::spawn(async move {
        while let Ok((mut s, _)) = echo.accept().await {
            s.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addrs
}

async fn bench(quick: bool, copy: ProxyCopy) {
    let dir = tempfile::tempdir().expect("tempdir");
    let enclave: Arc<dyn Transport> = Arc::new(Unix {
        listen_prefix: dir.path().join("enclave"),
        connect_prefix: dir.path().join("parent"),
    });
    enclave_apps(enclave.clone()).await;
    let (direct_sink, direct_echo) = direct_servers().await;
    let mut sup = Supervisor::start(dir.path(), 4096, copy);
    println!("proxy copy: {copy:?}");
    let (idle_rss, _) = sup.rss();
    println!("services RSS idle: {idle_rss:.1} MiB");

    // Throughput: 1 GiB per run, direct and proxied runs interleaved so that the machine's load
    // hits both alike; the ratio is taken per pair.
    let total: u64 = if quick { 256 << 20 } else { 1 << 30 };
    let rounds = if quick { 3 } else { 7 };
    let (mut direct, mut proxied, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    let cpu_before = sup.cpu_secs();
    for _ in 0..rounds {
        let d = throughput(direct_sink, total).await;
        let p = throughput(sup.addr(SINK_PORT), total).await;
        println!(
            "  direct {d:.0} MiB/s, proxied {p:.0} MiB/s = {:.0} %",
            100.0 * p / d
        );
        direct.push(d);
        proxied.push(p);
        ratio.push(100.0 * p / d);
    }
    let (user, sys) = sup.cpu_secs();
    let gib = (rounds as u64 * total) as f64 / (1u64 << 30) as f64;
    println!(
        "ingress throughput ({} MiB x {rounds}, median [min-max]): direct loopback TCP {} MiB/s, \
         proxied over unix {} MiB/s, ratio {} % (target >= 80 %)",
        total >> 20,
        spread(&mut direct, 0),
        spread(&mut proxied, 0),
        spread(&mut ratio, 0),
    );
    println!(
        "services CPU per GiB proxied: user {:.3} s, system {:.3} s",
        (user - cpu_before.0) / gib,
        (sys - cpu_before.1) / gib
    );
    let (rss, hwm) = sup.rss();
    println!("services RSS after throughput: {rss:.1} MiB (peak {hwm:.1} MiB)");

    // Latency at 1,000 requests/s, direct and proxied rounds interleaved.
    let (rounds, n) = if quick { (2, 1000) } else { (5, 2000) };
    let mut added = [Vec::new(), Vec::new()];
    for _ in 0..rounds {
        let d = latencies(direct_echo, 1000, n).await;
        let p = latencies(sup.addr(ECHO_PORT), 1000, n).await;
        println!(
            "  direct p50 {:.0} µs p99 {:.0} µs; proxied p50 {:.0} µs p99 {:.0} µs",
            pct(&d, 0.5),
            pct(&d, 0.99),
            pct(&p, 0.5),
            pct(&p, 0.99)
        );
        for (a, q) in added.iter_mut().zip([0.5, 0.99]) {
            a.push(pct(&p, q) - pct(&d, q));
        }
    }
    println!(
        "added round-trip latency at 1000 req/s ({rounds} x {n} requests, median [min-max]): \
         p50 {} µs, p99 {} µs (target p99 < 1000 µs)",
        spread(&mut added[0], 0),
        spread(&mut added[1], 0)
    );

    // 1,000 connections held open through the proxy, idle and then all echoing at once.
    let mut held = Vec::new();
    for _ in 0..1000 {
        let mut c = TcpStream::connect(sup.addr(ECHO_PORT)).await.unwrap();
        c.write_all(b"x").await.unwrap();
        let mut one = [0u8; 1];
        c.read_exact(&mut one).await.unwrap();
        held.push(c);
    }
    let (rss, hwm) = sup.rss();
    println!("services RSS with 1000 open proxied connections: {rss:.1} MiB (peak {hwm:.1} MiB)");
    let busy = Instant::now();
    let echoes = held
        .into_iter()
        .map(|c| tokio::spawn(echo_for(c, Duration::from_secs(3))));
    let echoes: Vec<_> = echoes.collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss, hwm) = sup.rss();
    let mut round_trips = 0;
    for e in echoes {
        round_trips += e.await.expect("echo task");
    }
    println!(
        "services RSS with 1000 connections echoing 16 KiB at once: {rss:.1} MiB (peak {hwm:.1} \
         MiB; {round_trips} round trips in {:.1} s)",
        busy.elapsed().as_secs_f64()
    );

    // Logs: the highest paced rate without a drop on either side (host writes JSON to a file).
    let mut best = 0;
    for rate in [10_000u64, 25_000, 50_000, 100_000, 200_000, 400_000] {
        let sender = LogSender::spawn(enclave.clone(), 4096);
        let secs = if quick { 1 } else { 2 };
        let dropped_host = "nitro_enclave_log_events_dropped_total{side=\"host\"}";
        let before = sup.metric(dropped_host);
        let start = Instant::now();
        let mut sent = 0u64;
        while start.elapsed() < Duration::from_secs(secs) {
            let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
            while sent < due {
                sender.log(
                    Level::Info,
                    LogStream::Stdout,
                    "GET /health 200 0.4ms user-agent=ELB-HealthChecker/2.0",
                );
                sent += 1;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let stats = sender.shutdown(Duration::from_secs(30)).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let host = sup.metric(dropped_host) - before;
        println!(
            "logs at {rate}/s for {secs} s: {sent} queued, enclave dropped {}, host dropped {host}",
            stats.dropped
        );
        if stats.dropped > 0 || host > 0.0 {
            break;
        }
        best = rate;
    }
    println!("log records/s forwarded before drops start: {best} (next step dropped)");
    let (rss, hwm) = sup.rss();
    println!("services RSS at the end: {rss:.1} MiB (peak {hwm:.1} MiB)");
}
