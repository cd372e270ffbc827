//! The live system as `/proc` shows it, for a forensic bundle: every process (pid, parent,
//! user, state, name, command line) and every open socket (TCP and UDP over IPv4 and IPv6,
//! with its owner process where `/proc/PID/fd` tells). Everything is bounded: a hostile
//! process can make its command line or its socket count large, not the bundle.

use std::{
    collections::HashMap,
    fs,
    net::{Ipv4Addr, Ipv6Addr},
    path::Path,
};

use serde::Serialize;

/// Most processes listed.
pub const MAX_PROCESSES: usize = 4096;
/// Most sockets listed.
pub const MAX_SOCKETS: usize = 8192;
/// Longest command line kept (bytes).
const MAX_CMDLINE: usize = 1024;

/// One process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Process {
    /// Its id.
    pub pid: u32,
    /// Its parent's id.
    pub ppid: u32,
    /// Its real user id.
    pub uid: Option<u32>,
    /// Its state letter (`R`, `S`, `Z`, …).
    pub state: String,
    /// Its name (`comm`).
    pub name: String,
    /// Its command line, arguments separated by spaces (truncated).
    pub cmdline: String,
}

/// One socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Socket {
    /// `tcp`, `tcp6`, `udp` or `udp6`.
    pub proto: &'static str,
    /// Local address and port.
    pub local: String,
    /// Remote address and port.
    pub remote: String,
    /// The kernel's state (TCP: `LISTEN`, `ESTABLISHED`, …; UDP: as TCP's numbering).
    pub state: &'static str,
    /// Owner's user id.
    pub uid: u32,
    /// The socket's inode.
    pub inode: u64,
    /// The process holding it, when visible.
    pub pid: Option<u32>,
}

/// The processes under `proc` (normally `/proc`), by pid.
pub fn processes(proc: &Path) -> Vec<Process> {
    let mut pids: Vec<u32> = fs::read_dir(proc)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
                .collect()
        })
        .unwrap_or_default();
    pids.sort_unstable();
    pids.into_iter()
        .filter_map(|pid| process(&proc.join(pid.to_string()), pid))
        .take(MAX_PROCESSES)
        .collect()
}

fn process(dir: &Path, pid: u32) -> Option<Process> {
    let stat = fs::read_to_string(dir.join("stat")).ok()?;
    // `pid (comm) state ppid …`: comm may hold spaces and parentheses, so split at the last `)`.
    let (head, tail) = stat.rsplit_once(')')?;
    let name = head.split_once('(')?.1.to_string();
    let mut fields = tail.split_whitespace();
    let state = fields.next()?.to_string();
    let ppid = fields.next()?.parse().ok()?;
    let uid = fs::read_to_string(dir.join("status")).ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    });
    let mut cmdline = fs::read(dir.join("cmdline")).unwrap_or_default();
    cmdline.truncate(MAX_CMDLINE);
    let cmdline = String::from_utf8_lossy(&cmdline)
        .replace('\0', " ")
        .trim_end()
        .to_string();
    Some(Process {
        pid,
        ppid,
        uid,
        state,
        name,
        cmdline,
    })
}

/// The sockets in `proc`'s network tables, with their owners where visible.
pub fn sockets(proc: &Path) -> Vec<Socket> {
    let owners = socket_owners(proc);
    let mut out = Vec::new();
    for proto in ["tcp", "tcp6", "udp", "udp6"] {
        let Ok(table) = fs::read_to_string(proc.join("net").join(proto)) else {
            continue;
        };
        for line in table.lines().skip(1) {
            if out.len() >= MAX_SOCKETS {
                return out;
            }
            if let Some(mut s) = parse_socket(proto, line) {
                s.pid = owners.get(&s.inode).copied();
                out.push(s);
            }
        }
    }
    out
}

/// Socket inode → the first process holding it (`/proc/PID/fd/N -> socket:[INODE]`).
fn socket_owners(proc: &Path) -> HashMap<u64, u32> {
    let mut owners = HashMap::new();
    for p in processes(proc) {
        let Ok(fds) = fs::read_dir(proc.join(p.pid.to_string()).join("fd")) else {
            continue;
        };
        for fd in fds.flatten().take(4096) {
            let Ok(target) = fs::read_link(fd.path()) else {
                continue;
            };
            let target = target.to_string_lossy();
            if let Some(inode) = target
                .strip_prefix("socket:[")
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|i| i.parse().ok())
            {
                owners.entry(inode).or_insert(p.pid);
            }
        }
    }
    owners
}

/// Parses one line of a `/proc/net/{tcp,tcp6,udp,udp6}` table.
pub fn parse_socket(proto: &'static str, line: &str) -> Option<Socket> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let (local, remote, state) = (f.get(1)?, f.get(2)?, f.get(3)?);
    Some(Socket {
        proto,
        local: address(local)?,
        remote: address(remote)?,
        state: tcp_state(u8::from_str_radix(state, 16).ok()?),
        uid: f.get(7)?.parse().ok()?,
        inode: f.get(9)?.parse().ok()?,
        pid: None,
    })
}

/// `0100007F:1F90` → `127.0.0.1:8080`; IPv6 as four little-endian 32-bit words.
fn address(s: &str) -> Option<String> {
    let (ip, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    match ip.len() {
        8 => {
            let v = u32::from_str_radix(ip, 16).ok()?;
            Some(format!("{}:{port}", Ipv4Addr::from(v.swap_bytes())))
        }
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_mut(4).enumerate() {
                let word = u32::from_str_radix(ip.get(i * 8..i * 8 + 8)?, 16).ok()?;
                chunk.copy_from_slice(&word.swap_bytes().to_be_bytes());
            }
            Some(format!("[{}]:{port}", Ipv6Addr::from(bytes)))
        }
        _ => None,
    }
}

fn tcp_state(n: u8) -> &'static str {
    match n {
        0x01 => "ESTABLISHED",
        0x02 => "SYN_SENT",
        0x03 => "SYN_RECV",
        0x04 => "FIN_WAIT1",
        0x05 => "FIN_WAIT2",
        0x06 => "TIME_WAIT",
        0x07 => "CLOSE",
        0x08 => "CLOSE_WAIT",
        0x09 => "LAST_ACK",
        0x0A => "LISTEN",
        0x0B => "CLOSING",
        _ => "UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_lines_parse_and_garbage_does_not() {
        let line = "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 100 0 0 10 0";
        let s = parse_socket("tcp", line).expect("parses");
        assert_eq!(
            (s.local.as_str(), s.remote.as_str(), s.state, s.uid, s.inode),
            ("127.0.0.1:8080", "0.0.0.0:0", "LISTEN", 1000, 4242)
        );
        let v6 = "   1: 00000000000000000000000001000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 77 1";
        assert_eq!(
            parse_socket("tcp6", v6).map(|s| s.local),
            Some("[::1]:22".into())
        );
        assert_eq!(parse_socket("tcp", "garbage"), None);
        assert_eq!(parse_socket("tcp", "0: zz:zz 00:00 0A"), None);
    }

    #[test]
    fn this_process_is_listed() {
        let me = std::process::id();
        let list = processes(Path::new("/proc"));
        let p = list.iter().find(|p| p.pid == me).expect("self listed");
        assert!(!p.name.is_empty() && !p.cmdline.is_empty(), "{p:?}");
    }
}
