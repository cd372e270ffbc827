//! Connections that try to exhaust the server: a thousand slow connections without
//! credentials, more from one address than its cap, TLS clients that trickle their headers
//! or their body. Each is closed by its cap or timeout while a device keeps getting answers
//! within a second.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use crate::common::*;
use edgeward_server::config::ConnectionLimits;
use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};

/// A TCP connection to `to` from the loopback address `from`.
async fn connect_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from((from, 0)))
        .expect("bind a loopback source address");
    socket.connect(to).await.expect("connect")
}

/// Whether the server closes `stream` within `within` (reads end or fail).
async fn closed_within<S: AsyncReadExt + Unpin>(stream: &mut S, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .is_ok()
}

/// A TLS client (no client certificate) to the admin listener.
async fn tls_to(s: &Server, from: [u8; 4]) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(s.server_ca()).expect("ca") {
        roots.add(c.expect("cert")).expect("add");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = connect_from(from, s.running.admin_addr).await;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("handshake")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_connections_are_capped_and_timed_out_while_a_device_keeps_its_answers() {
    let s = start_with(
        Backend::Sqlite,
        |c| {
            c.connections = ConnectionLimits {
                handshake_timeout_secs: 2,
                header_timeout_secs: 2,
                body_timeout_secs: 2,
                idle_timeout_secs: 2,
                max_connections: 4096,
                max_connections_per_address: 25,
                ..ConnectionLimits::default()
            }
        },
        None,
    )
    .await;
    let e = s.enroll(&device_id("cam"), "cam").await;

    // A thousand silent connections from twenty addresses, twenty-five from each to each
    // listener (each address at its cap).
    let mut silent = Vec::new();
    for i in 0..1000u32 {
        let from = [127, 0, 1, 1 + (i % 20) as u8];
        let to = if (i / 20) % 2 == 0 {
            s.running.device_addr
        } else {
            s.running.admin_addr
        };
        silent.push(connect_from(from, to).await);
    }
    let opened = Instant::now();
    // One address past its cap: closed at once, on both listeners.
    for to in [s.running.device_addr, s.running.admin_addr] {
        for _ in 0..20 {
            let mut extra = connect_from([127, 0, 1, 1], to).await;
            assert!(
                closed_within(&mut extra, Duration::from_millis(500)).await,
                "a connection over the address's cap stayed open"
            );
        }
    }
    // TLS clients that trickle their headers, or their body, from other addresses.
    let mut trickling = Vec::new();
    for i in 0..5u8 {
        let mut t = tls_to(&s, [127, 0, 2, 1 + i]).await;
        t.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
            .await
            .expect("write");
        trickling.push(t);
        let mut t = tls_to(&s, [127, 0, 3, 1 + i]).await;
        t.write_all(b"POST /v1/enroll HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 4000\r\n\r\n{\"token\":")
            .await
            .expect("write");
        trickling.push(t);
    }

    // Meanwhile a device, on a new connection each time, gets every answer within a second.
    for i in 0..20 {
        let started = Instant::now();
        let r = s
            .device_client(&e)
            .post(s.device_url("/v1/device/telemetry"))
            .header("authorization", v1(&e, unix_now()))
            .json(&json!({ "records": [{ "i": i }] }))
            .send()
            .await
            .expect("device call");
        assert_eq!(r.status(), 200);
        let took = started.elapsed();
        assert!(took < Duration::from_secs(1), "call {i} took {took:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The slow ones are closed by their timeouts (2 s, checked each half second).
    for (i, t) in trickling.iter_mut().enumerate() {
        assert!(
            closed_within(t, Duration::from_secs(4)).await,
            "trickling client {i} still open after {:?}",
            opened.elapsed()
        );
    }
    for (i, c) in silent.iter_mut().enumerate() {
        assert!(
            closed_within(c, Duration::from_secs(4)).await,
            "silent connection {i} still open after {:?}",
            opened.elapsed()
        );
    }
    // Their places are free again: the first address connects and gets an answer.
    let c = connect_from([127, 0, 1, 1], s.running.admin_addr).await;
    drop(c);
    let (status, _) = s.admin_get("/v1/admin/devices").await;
    assert_eq!(status, 200);
    s.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let s = start_with(
        Backend::Sqlite,
        |c| {
            c.connections.idle_timeout_secs = 1;
        },
        None,
    )
    .await;
    let mut t = tls_to(&s, [127, 0, 4, 1]).await;
    t.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = vec![0u8; 1024];
    let n = t.read(&mut buf).await.expect("read");
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    let idle = Instant::now();
    assert!(
        closed_within(&mut t, Duration::from_secs(3)).await,
        "still open"
    );
    assert!(
        idle.elapsed() >= Duration::from_millis(900),
        "closed too early"
    );
    s.running.stop().await;
}
