//! Enrollment CSRs: any bytes as the PEM a device sends. The device CA must refuse or issue
//! without panicking, and anything it issues must be a client certificate for the requested
//! device id, never a CA.
#![no_main]

use std::sync::OnceLock;

use edgeward_pki::device_ca::DeviceCa;
use libfuzzer_sys::fuzz_target;

fn ca() -> &'static DeviceCa {
    static CA: OnceLock<DeviceCa> = OnceLock::new();
    CA.get_or_init(|| {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        p.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "Fuzz Device CA");
        let cert = p.self_signed(&key).expect("ca");
        DeviceCa::from_pem(&cert.pem(), &key.serialize_pem()).expect("device ca")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(pem) = std::str::from_utf8(data) else {
        return;
    };
    let now = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("time");
    if let Ok(issued) = ca().issue(pem, "fuzz-device", 30, now) {
        let der = edgeward_core::pem::parse_labelled(issued.cert_pem.as_bytes(), "CERTIFICATE")
            .expect("issued PEM");
        let info = edgeward_core::cert_policy::cert_info(&der[0]).expect("issued certificate parses");
        assert_eq!(info.subject, "CN=fuzz-device");
    }
});
