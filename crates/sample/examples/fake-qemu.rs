//! A stand-in for a QEMU process, for bench/sample.sh: VCPUS threads named like QEMU's vCPU
//! threads plus a few named like its other threads, busy (spinning) or idle. Prints one line,
//! `PID TID0 TID1 ...` (the vCPU thread ids), then runs until killed.
//!
//!     fake-qemu VCPUS busy|idle

use std::sync::mpsc;

fn own_tid() -> u32 {
    let link = std::fs::read_link("/proc/thread-self").expect("/proc/thread-self");
    link.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse().ok())
        .expect("tid")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let vcpus: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(8);
    let busy = args.get(2).map(String::as_str) != Some("idle");
    let (tx, rx) = mpsc::channel();
    let others = ["IO mon_iothread", "call_rcu", "mig/src/main", "worker"];
    let names = (0..vcpus)
        .map(|i| format!("CPU {i}/KVM"))
        .chain(others.map(String::from));
    let names: Vec<String> = names.collect();
    let count = names.len();
    for (i, name) in names.into_iter().enumerate() {
        let tx = tx.clone();
        let spin = busy && i < vcpus;
        std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                tx.send((i, own_tid())).unwrap();
                let mut x = 0u64;
                loop {
                    if spin {
                        x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(1));
                    } else {
                        std::thread::sleep(std::time::Duration::from_secs(3600));
                    }
                }
            })
            .expect("spawn");
    }
    let mut tids: Vec<(usize, u32)> = rx.iter().take(count).collect();
    tids.sort();
    let vcpu_tids: Vec<String> = tids[..vcpus].iter().map(|(_, t)| t.to_string()).collect();
    println!("{} {}", std::process::id(), vcpu_tids.join(" "));
    loop {
        std::thread::park();
    }
}
