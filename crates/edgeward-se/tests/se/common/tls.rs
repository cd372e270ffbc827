//! A real mTLS handshake on loopback: a rustls server requiring a client certificate from
//! a test CA, and a rustls client whose key is [`edgeward_se::tls::SeSigningKey`].

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    sync::Arc,
};

use edgeward_se::{
    tls::{SeClientCertResolver, SeSigningKey},
    SecureElement,
};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::{
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName},
    server::WebPkiClientVerifier,
    ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection, StreamOwned,
};

/// Issues a client certificate for the element's key in `slot`, runs a handshake against a
/// rustls server that demands client auth, and checks the server saw that certificate.
pub(crate) fn mtls_handshake(element: Arc<dyn SecureElement>, slot: &str) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // A CA, a server certificate and a client certificate for the element's public key.
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().unwrap();
    let server_cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();

    let key = SeSigningKey::new(Arc::clone(&element), slot).unwrap();
    let spki = rcgen::SubjectPublicKeyInfo::from_der(&key.public().to_spki_der()).unwrap();
    let mut client_params =
        CertificateParams::new(vec!["device-1.edgeward.test".to_string()]).unwrap();
    client_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client_params.signed_by(&spki, &issuer).unwrap();
    let client_der = client_cert.der().clone();

    let mut roots = RootCertStore::empty();
    roots.add(ca_cert.der().clone()).unwrap();
    let roots = Arc::new(roots);

    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::clone(&roots), Arc::clone(&provider))
            .build()
            .unwrap();
    let server_config = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![server_cert.der().clone(), ca_cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        )
        .unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        let conn = ServerConnection::new(Arc::new(server_config)).unwrap();
        let mut tls = StreamOwned::new(conn, tcp);
        let mut request = [0u8; 4];
        tls.read_exact(&mut request).unwrap();
        assert_eq!(&request, b"ping");
        let peer = tls.conn.peer_certificates().unwrap()[0]
            .clone()
            .into_owned();
        tls.write_all(b"pong").unwrap();
        tls.flush().unwrap();
        peer
    });

    let resolver = SeClientCertResolver::new(key.certified_key(vec![client_der.clone()]));
    let client_config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_cert_resolver(Arc::new(resolver));
    let conn = ClientConnection::new(
        Arc::new(client_config),
        ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    let mut tls = StreamOwned::new(conn, TcpStream::connect(addr).unwrap());
    tls.write_all(b"ping").unwrap();
    let mut reply = [0u8; 4];
    tls.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"pong");
    let seen: CertificateDer<'static> = server.join().unwrap();
    assert_eq!(
        seen, client_der,
        "the server authenticated the element's certificate"
    );
}
