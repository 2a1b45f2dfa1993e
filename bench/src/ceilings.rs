//! This machine's ceilings, measured in the same run as the brokers so that a broker's
//! numbers can be read as a fraction of what the disk and the loopback device allow.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use serde::Serialize;

/// What the machine can do without a broker.
#[derive(Debug, Clone, Serialize)]
pub struct Ceilings {
    /// Sequential 1 MiB `write`s into the page cache, no sync.
    pub write_buffered_mb_per_sec: f64,
    /// Sequential 1 MiB `write` + `fdatasync` each.
    pub write_fdatasync_mb_per_sec: f64,
    /// 4 KiB `write` + `fdatasync` latency: the cost of one durable acknowledgement.
    pub fdatasync_4k_p50_us: u64,
    pub fdatasync_4k_p99_us: u64,
    /// One sender thread, one receiver thread, 1 MiB writes over 127.0.0.1.
    pub loopback_tcp_mb_per_sec: f64,
    pub config: CeilingConfig,
}

#[derive(Debug, Clone, Serialize)]
pub struct CeilingConfig {
    pub write_bytes: u64,
    pub write_block_bytes: usize,
    pub fdatasync_bytes: u64,
    pub fdatasync_4k_samples: u32,
    pub loopback_seconds: f64,
}

const BLOCK: usize = 1 << 20;

pub fn measure(dir: &Path, write_bytes: u64, fdatasync_bytes: u64) -> Result<Ceilings> {
    std::fs::create_dir_all(dir)?;
    let config = CeilingConfig {
        write_bytes,
        write_block_bytes: BLOCK,
        fdatasync_bytes,
        fdatasync_4k_samples: 2000,
        loopback_seconds: 3.0,
    };
    let write_buffered_mb_per_sec =
        sequential_write(&dir.join("buffered.bin"), write_bytes, false)?;
    let write_fdatasync_mb_per_sec =
        sequential_write(&dir.join("fdatasync.bin"), fdatasync_bytes, true)?;
    let (fdatasync_4k_p50_us, fdatasync_4k_p99_us) =
        small_sync_latency(&dir.join("sync4k.bin"), config.fdatasync_4k_samples)?;
    let loopback_tcp_mb_per_sec = loopback(Duration::from_secs_f64(config.loopback_seconds))?;
    Ok(Ceilings {
        write_buffered_mb_per_sec,
        write_fdatasync_mb_per_sec,
        fdatasync_4k_p50_us,
        fdatasync_4k_p99_us,
        loopback_tcp_mb_per_sec,
        config,
    })
}

fn block() -> Vec<u8> {
    (0..BLOCK).map(|i| (i % 251) as u8).collect()
}

/// MB/s of `total` bytes written in 1 MiB blocks; with `sync`, each block is fdatasync'ed
/// before the next. Without, the clock stops when the last `write` returns (page-cache
/// speed); the data is synced afterwards, off the clock, so the next test starts clean.
fn sequential_write(path: &Path, total: u64, sync: bool) -> Result<f64> {
    let buf = block();
    let mut file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let blocks = total.div_ceil(BLOCK as u64);
    let start = Instant::now();
    for _ in 0..blocks {
        file.write_all(&buf)?;
        if sync {
            file.sync_data()?;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    file.sync_data()?;
    drop(file);
    std::fs::remove_file(path)?;
    Ok((blocks * BLOCK as u64) as f64 / seconds / 1e6)
}

/// p50 and p99 (µs) of 4 KiB append + fdatasync, the unit cost a single durable produce
/// pays without group commit.
fn small_sync_latency(path: &Path, samples: u32) -> Result<(u64, u64)> {
    let buf = vec![7u8; 4096];
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)?;
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for _ in 0..samples {
        let t = Instant::now();
        file.write_all(&buf)?;
        file.sync_data()?;
        hist.saturating_record(u64::try_from(t.elapsed().as_micros())?.max(1));
    }
    drop(file);
    std::fs::remove_file(path)?;
    Ok((hist.value_at_quantile(0.5), hist.value_at_quantile(0.99)))
}

/// MB/s received over a 127.0.0.1 TCP connection from a thread writing 1 MiB buffers.
fn loopback(duration: Duration) -> Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let sender = std::thread::spawn(move || -> Result<()> {
        let mut stream = TcpStream::connect(addr)?;
        let buf = block();
        let start = Instant::now();
        while start.elapsed() < duration {
            stream.write_all(&buf)?;
        }
        Ok(())
    });
    let (mut stream, _) = listener.accept()?;
    let mut buf = vec![0u8; BLOCK];
    let mut received: u64 = 0;
    let start = Instant::now();
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        received += n as u64;
    }
    let seconds = start.elapsed().as_secs_f64();
    sender
        .join()
        .map_err(|_| anyhow::anyhow!("loopback sender panicked"))??;
    Ok(received as f64 / seconds / 1e6)
}
