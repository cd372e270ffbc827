//! One launcher of a real Mosquitto (Debian's binary, `$EDGEWARD_MOSQUITTO` to override) on a
//! free loopback port, shared by the test binaries of edgeward-server and edgeward-agent
//! (each includes this file with `#[path]`), so that both start the broker the same way: with
//! the configuration `edgeward-server broker-config` generates for a server, or as a plain
//! anonymous listener (the detection tests' alert bus).

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use edgeward_server::mqtt::{broker_config, MqttConfig};

/// The broker binary: `$EDGEWARD_MOSQUITTO`, else Debian's.
fn binary() -> String {
    let bin = std::env::var("EDGEWARD_MOSQUITTO").unwrap_or_else(|_| "/usr/sbin/mosquitto".into());
    assert!(
        Path::new(&bin).exists(),
        "{bin} not found: these tests need Debian's mosquitto package (or set EDGEWARD_MOSQUITTO)"
    );
    bin
}

/// A free TCP port on loopback.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A broker's port and directory, chosen before the server that names them in its `[mqtt]`
/// section starts; [`BrokerSlot::start`] then starts the broker itself.
pub(crate) struct BrokerSlot {
    /// The broker's TLS port.
    pub(crate) port: u16,
    dir: tempfile::TempDir,
}

impl BrokerSlot {
    /// A free port and an empty directory for the broker's configuration, pid file and log.
    pub(crate) fn new() -> Self {
        Self {
            port: free_port(),
            dir: tempfile::tempdir().expect("tmp"),
        }
    }

    /// The server's `[mqtt]` section for this broker.
    pub(crate) fn mqtt_config(&self) -> MqttConfig {
        MqttConfig {
            broker: format!("127.0.0.1:{}", self.port),
            client_id: "edgeward-server".into(),
            workers: 4,
            reload_pid_file: Some(self.dir.path().join("mosquitto.pid")),
        }
    }

    /// Starts the broker with the configuration `broker-config` writes from the server's data
    /// directory (its CA, its dynamic-security file, the generated broker certificate).
    pub(crate) fn start(self, server_data_dir: &Path) -> Mosquitto {
        assert!(
            Path::new(broker_config::DEFAULT_PLUGIN).exists(),
            "these tests need the dynamic-security plugin of Debian's mosquitto package"
        );
        let conf = broker_config::write(
            server_data_dir,
            &broker_config::BrokerOptions {
                listen: ([127, 0, 0, 1], self.port).into(),
                names: Vec::new(),
                run_as: is_root().then(|| "root".to_string()),
                plugin: broker_config::DEFAULT_PLUGIN.into(),
                root_ca: None,
                out: self.dir.path().to_path_buf(),
            },
            time::OffsetDateTime::now_utc(),
        )
        .expect("broker config");
        Mosquitto::spawn(&conf, self.port, self.dir)
    }
}

/// A Mosquitto process of this test, killed when dropped.
pub(crate) struct Mosquitto {
    child: Child,
    /// The port it listens on.
    pub(crate) port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Mosquitto {
    /// A plain broker: anonymous clients, no TLS, no persistence.
    pub(crate) fn plain() -> Self {
        let port = free_port();
        let dir = tempfile::tempdir().expect("tmp");
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
        )
        .expect("conf");
        Self::spawn(&conf, port, dir)
    }

    /// What the broker logged (verbose).
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs the broker with `conf`, its verbose log in `dir`, and waits until it listens.
    fn spawn(conf: &Path, port: u16, dir: tempfile::TempDir) -> Self {
        let log = dir.path().join("mosquitto.log");
        let child = Command::new(binary())
            .arg("-c")
            .arg(conf)
            .arg("-v")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("mosquitto starts");
        let broker = Self {
            child,
            port,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not listen on {port} within 10 s: {}",
                broker.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        broker
    }
}

/// Whether this process runs as root (Mosquitto then needs `user root` to read the generated
/// 0600 key).
fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}
