//! MQTT topics and payloads as the server receives them from the broker, and the replies
//! the agent receives: bounded, total decoding; what decodes names a valid device id, and a
//! request's topic is exactly the one the device would publish it on.
#![no_main]

use edgeward_proto::mqtt;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first line is the topic, the rest the payload.
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let (topic, payload) = data.split_at(split);
    if let Ok(topic) = std::str::from_utf8(topic) {
        if let Ok(r) = mqtt::decode(topic, payload) {
            assert!(edgeward_proto::device_id::validate(r.device).is_ok());
            assert!(r.payload.len() <= mqtt::MAX_PAYLOAD);
            assert_eq!(mqtt::request_topic(r.device, r.up), topic);
        }
        if let Ok((host, _)) = mqtt::host_port(topic) {
            assert!(!host.is_empty());
        }
    }
    if let Ok(reply) = mqtt::parse_reply(data) {
        assert!(data.len() <= mqtt::MAX_PAYLOAD);
        let _ = reply.request.len();
    }
});
