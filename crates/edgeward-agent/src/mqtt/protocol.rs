//! The two MQTT protocol versions behind one face. rumqttc has a client per version with
//! its own types (MQTT 3.1.1 in `rumqttc`, MQTT 5 in `rumqttc::v5`); the link only needs to
//! connect over TLS, subscribe, publish at QoS 1 and hear what happens, so this module maps
//! both onto [`Client`] and [`Happened`] and the link's logic exists once.

use std::{sync::Arc, time::Duration};

use rumqttc::{v5, TlsConfiguration, Transport};
use serde::Deserialize;

/// The MQTT version the agent speaks to the broker (`mqtt_version` in `agent.toml`).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum MqttVersion {
    /// MQTT 3.1.1 (protocol level 4), which every broker speaks.
    #[default]
    #[serde(rename = "3.1.1")]
    V311,
    /// MQTT 5 (protocol level 5): reason codes on refusals and on the broker's DISCONNECT.
    #[serde(rename = "5")]
    V5,
}

impl MqttVersion {
    /// As written in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            MqttVersion::V311 => "3.1.1",
            MqttVersion::V5 => "5",
        }
    }
}

/// How a connection is set up, whichever the version.
pub struct Options<'a> {
    /// The client id (the device id; the broker also takes the identity from the certificate).
    pub client_id: &'a str,
    /// The broker's host.
    pub host: &'a str,
    /// The broker's TLS port.
    pub port: u16,
    /// The device's mutual-TLS configuration.
    pub tls: rustls::ClientConfig,
    /// Largest packet either way, in bytes.
    pub max_packet: usize,
    /// The keep-alive interval.
    pub keep_alive: Duration,
    /// Capacity of the request channel to the event loop.
    pub capacity: usize,
}

/// The sending half of a connection.
#[derive(Clone)]
pub enum Client {
    /// MQTT 3.1.1.
    V311(rumqttc::AsyncClient),
    /// MQTT 5.
    V5(v5::AsyncClient),
}

/// The event loop of a connection; [`EventLoop::next`] drives it.
pub enum EventLoop {
    /// MQTT 3.1.1.
    V311(Box<rumqttc::EventLoop>),
    /// MQTT 5.
    V5(Box<v5::EventLoop>),
}

/// What the connection reported.
#[derive(Debug)]
pub enum Happened {
    /// The broker accepted the connection (CONNACK).
    Connected,
    /// The broker answered a subscription: whether it granted every filter.
    Subscribed(bool),
    /// A message arrived on `topic`.
    Message {
        /// Its topic.
        topic: String,
        /// Its payload.
        payload: Vec<u8>,
    },
    /// The connection is gone (the broker closed it, refused it, or the network failed);
    /// the next [`EventLoop::next`] connects again.
    Lost(String),
    /// Anything else (acknowledgements, pings).
    Other,
}

/// Opens (lazily: the first [`EventLoop::next`] connects) a connection with `o`, in `version`.
pub fn connect(version: MqttVersion, o: Options<'_>) -> (Client, EventLoop) {
    let transport = Transport::tls_with_config(TlsConfiguration::Rustls(Arc::new(o.tls)));
    match version {
        MqttVersion::V311 => {
            let mut options = rumqttc::MqttOptions::new(o.client_id, o.host, o.port);
            options
                .set_transport(transport)
                .set_keep_alive(o.keep_alive)
                .set_max_packet_size(o.max_packet, o.max_packet)
                .set_clean_session(true);
            let (client, eventloop) = rumqttc::AsyncClient::new(options, o.capacity);
            (Client::V311(client), EventLoop::V311(Box::new(eventloop)))
        }
        MqttVersion::V5 => {
            let max = u32::try_from(o.max_packet).unwrap_or(u32::MAX);
            let mut options = v5::MqttOptions::new(o.client_id, o.host, o.port);
            options
                .set_transport(transport)
                .set_keep_alive(o.keep_alive)
                .set_max_packet_size(Some(max))
                .set_clean_start(true);
            let (client, eventloop) = v5::AsyncClient::new(options, o.capacity);
            (Client::V5(client), EventLoop::V5(Box::new(eventloop)))
        }
    }
}

impl Client {
    /// Publishes `payload` on `topic` at QoS 1 (handed to the event loop; the PUBACK comes
    /// later and says only that the broker has it).
    pub async fn publish(&self, topic: String, payload: Vec<u8>) -> Result<(), String> {
        match self {
            Client::V311(c) => c
                .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload)
                .await
                .map_err(|e| e.to_string()),
            Client::V5(c) => c
                .publish(topic, v5::mqttbytes::QoS::AtLeastOnce, false, payload)
                .await
                .map_err(|e| e.to_string()),
        }
    }

    /// Subscribes to `topics` at QoS 1 without waiting (the answer is a
    /// [`Happened::Subscribed`]).
    pub fn subscribe(&self, topics: &[String]) -> Result<(), String> {
        match self {
            Client::V311(c) => c
                .try_subscribe_many(
                    topics.iter().map(|t| {
                        rumqttc::SubscribeFilter::new(t.clone(), rumqttc::QoS::AtLeastOnce)
                    }),
                )
                .map_err(|e| e.to_string()),
            Client::V5(c) => c
                .try_subscribe_many(topics.iter().map(|t| {
                    v5::mqttbytes::v5::Filter::new(t.clone(), v5::mqttbytes::QoS::AtLeastOnce)
                }))
                .map_err(|e| e.to_string()),
        }
    }
}

impl EventLoop {
    /// Drives the connection until something happens.
    pub async fn next(&mut self) -> Happened {
        match self {
            EventLoop::V311(e) => match e.poll().await {
                Ok(rumqttc::Event::Incoming(p)) => from_v311(p),
                Ok(rumqttc::Event::Outgoing(_)) => Happened::Other,
                Err(e) => Happened::Lost(e.to_string()),
            },
            EventLoop::V5(e) => match e.poll().await {
                Ok(v5::Event::Incoming(p)) => from_v5(p),
                Ok(v5::Event::Outgoing(_)) => Happened::Other,
                Err(e) => Happened::Lost(e.to_string()),
            },
        }
    }
}

fn from_v311(packet: rumqttc::Packet) -> Happened {
    use rumqttc::Packet;
    match packet {
        Packet::ConnAck(_) => Happened::Connected,
        Packet::SubAck(s) => Happened::Subscribed(
            s.return_codes
                .iter()
                .all(|c| matches!(c, rumqttc::SubscribeReasonCode::Success(_))),
        ),
        Packet::Publish(p) => Happened::Message {
            topic: p.topic,
            payload: p.payload.to_vec(),
        },
        _ => Happened::Other,
    }
}

fn from_v5(packet: v5::Incoming) -> Happened {
    use v5::mqttbytes::v5::{Packet, SubscribeReasonCode};
    match packet {
        Packet::ConnAck(_) => Happened::Connected,
        Packet::SubAck(s) => Happened::Subscribed(
            s.return_codes
                .iter()
                .all(|c| matches!(c, SubscribeReasonCode::Success(_))),
        ),
        // A topic that is not UTF-8 cannot be one of the device's: dropped by the caller's
        // topic check.
        Packet::Publish(p) => Happened::Message {
            topic: String::from_utf8(p.topic.to_vec()).unwrap_or_default(),
            payload: p.payload.to_vec(),
        },
        // MQTT 5 lets the broker say why it closes the session (a revoked device is kicked).
        Packet::Disconnect(d) => Happened::Lost(format!(
            "the broker disconnected the session ({:?})",
            d.reason_code
        )),
        _ => Happened::Other,
    }
}
