//! A server consuming through a real Mosquitto (Debian's binary and dynamic-security
//! plugin) on a free loopback port, with the configuration `broker-config` generates.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use edgeward_server::{
    mqtt::{broker_config, MqttConfig},
    Config,
};

use super::Server;

const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// A Mosquitto process of this test, killed when dropped.
pub(crate) struct Broker {
    child: Child,
    /// Its TLS port.
    pub(crate) port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Broker {
    /// What the broker logged (verbose).
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A server with `[mqtt]` and its broker, both running.
pub(crate) async fn server_and_broker() -> (Server, Broker) {
    assert!(
        Path::new(MOSQUITTO).exists() && Path::new(broker_config::DEFAULT_PLUGIN).exists(),
        "these tests need Debian's mosquitto package (binary and dynamic-security plugin)"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let bdir = tempfile::tempdir().expect("tmp");
    let dir = tempfile::tempdir().expect("tmp");
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        listen: ([127, 0, 0, 1], 0).into(),
        admin_listen: ([127, 0, 0, 1], 0).into(),
        enroll_listen: ([127, 0, 0, 1], 0).into(),
        mqtt: Some(MqttConfig {
            broker: format!("127.0.0.1:{port}"),
            client_id: "edgeward-server".into(),
            workers: 4,
            reload_pid_file: Some(bdir.path().join("mosquitto.pid")),
        }),
        ..Config::default()
    };
    let running = edgeward_server::start(config).await.expect("server starts");
    let server = Server::with(running, dir);
    let conf = broker_config::write(
        server.dir.path(),
        &broker_config::BrokerOptions {
            listen: ([127, 0, 0, 1], port).into(),
            names: Vec::new(),
            run_as: rustix_root().then(|| "root".to_string()),
            plugin: broker_config::DEFAULT_PLUGIN.into(),
            root_ca: None,
            out: bdir.path().to_path_buf(),
        },
        time::OffsetDateTime::now_utc(),
    )
    .expect("broker config");
    let log = bdir.path().join("mosquitto.log");
    let child = Command::new(MOSQUITTO)
        .arg("-c")
        .arg(&conf)
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("mosquitto starts");
    let broker = Broker {
        child,
        port,
        log,
        _dir: bdir,
    };
    super::wait_for(10, "the broker to listen", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await;
    (server, broker)
}

/// Whether this process runs as root (Mosquitto then needs `user root` to read the
/// generated 0600 key).
fn rustix_root() -> bool {
    std::env::var("USER").map(|u| u == "root").unwrap_or(false)
        || std::fs::metadata("/proc/self")
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
            .unwrap_or(false)
}
