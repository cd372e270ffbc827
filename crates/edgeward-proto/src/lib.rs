//! The contract between an Edgeward device and the cloud that both sides compile against:
//! who a device is ([`device_id`]), how it authenticates each call ([`token`]), how the
//! server derives every device's token secret from one master key ([`secret`]), and the rate
//! rule the server applies to each device ([`gcra`]), the JSON bodies of every call
//! ([`api`]), the signed commands and results ([`command`]), the update reports a
//! device sends ([`update_report`]), and the MQTT topics and replies that carry device
//! traffic through a broker ([`mqtt`]), and the device-local sockets of isolated inference
//! ([`inference`]).

pub mod api;
pub mod command;
pub mod device_id;
pub mod forensics;
pub mod gcra;
pub mod inference;
pub mod mqtt;
pub mod repo_request;
pub mod rollout;
pub mod secret;
pub mod token;
pub mod update_report;
