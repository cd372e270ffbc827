//! A real TPM for tests and benchmarks: `swtpm socket --tpm2` on free loopback ports (the
//! TCTI uses the server port P and the control port P+1), killed on drop. Panics when swtpm
//! is missing: TPM tests fail rather than skip.

use std::{
    net::{TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A running `swtpm socket`, killed on drop.
pub(crate) struct Swtpm {
    child: Child,
    port: u16,
    _state: tempfile::TempDir,
}

impl Swtpm {
    /// Starts a fresh simulator (own state directory, `startup-clear`).
    pub(crate) fn start() -> Swtpm {
        for _ in 0..20 {
            let state = tempfile::tempdir().unwrap();
            let port = free_port_pair();
            let child = Command::new("swtpm")
                .args(["socket", "--tpm2", "--tpmstate"])
                .arg(format!("dir={}", state.path().display()))
                .args([
                    "--server",
                    &format!("type=tcp,port={port},bindaddr=127.0.0.1"),
                ])
                .args([
                    "--ctrl",
                    &format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1),
                ])
                .args(["--flags", "not-need-init,startup-clear"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("swtpm is not installed (apt-get install swtpm swtpm-tools)");
            let mut swtpm = Swtpm {
                child,
                port,
                _state: state,
            };
            if swtpm.wait_ready() {
                return swtpm;
            }
            // Another process took a port; dropping kills this one. Try other ports.
        }
        panic!("could not start swtpm on free loopback ports");
    }

    /// Waits until the control port answers (the server port serves one client at a time,
    /// so it is left alone); false when swtpm exited.
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if TcpStream::connect(("127.0.0.1", self.port + 1)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// The TSS TCTI configuration reaching this simulator.
    pub(crate) fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port P such that P and P+1 were both free a moment ago.
fn free_port_pair() -> u16 {
    loop {
        let a = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = a.local_addr().unwrap().port();
        if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}
