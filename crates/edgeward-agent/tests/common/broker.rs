//! A server consuming through a real Mosquitto (Debian's binary and dynamic-security
//! plugin) on a free loopback port, with the configuration `broker-config` generates; the
//! broker is started by the launcher the server's tests use too.

use edgeward_server::Config;

use super::Server;

#[path = "../../../edgeward-server/tests/support/mosquitto.rs"]
mod mosquitto;

pub(crate) use mosquitto::Mosquitto as Broker;

/// A server with `[mqtt]` and its broker, both running.
pub(crate) async fn server_and_broker() -> (Server, Broker) {
    let slot = mosquitto::BrokerSlot::new();
    let dir = tempfile::tempdir().expect("tmp");
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        listen: ([127, 0, 0, 1], 0).into(),
        admin_listen: ([127, 0, 0, 1], 0).into(),
        enroll_listen: ([127, 0, 0, 1], 0).into(),
        mqtt: Some(slot.mqtt_config()),
        ..Config::default()
    };
    let running = edgeward_server::start(config).await.expect("server starts");
    let server = Server::with(running, dir);
    let broker = slot.start(server.dir.path());
    (server, broker)
}
