//! Which process holds a TCP port, for the "address in use" error at start-up.
//!
//! On Linux: the listening socket's inode from `/proc/net/tcp` and `/proc/net/tcp6`, then the
//! process with a `/proc/PID/fd/*` link to `socket:[INODE]`, then its `/proc/PID/comm`.
//! Best-effort: `None` whenever a step cannot tell (another system, another user's process
//! whose descriptors cannot be read, a socket gone in between).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

/// A process holding a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Its process id.
    pub pid: u32,
    /// Its command name (`/proc/PID/comm`: at most 15 bytes).
    pub name: String,
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}, pid {}", self.name, self.pid)
    }
}

/// The process listening on `addr`'s port at an address that covers `addr` (the same one, or
/// an unspecified one), when it can be told.
pub fn of(addr: SocketAddr) -> Option<Owner> {
    if cfg!(target_os = "linux") {
        of_in(Path::new("/proc"), addr)
    } else {
        None
    }
}

/// [`of`], with `proc` standing for `/proc`.
pub fn of_in(proc: &Path, addr: SocketAddr) -> Option<Owner> {
    let inode = ["net/tcp", "net/tcp6"].iter().find_map(|table| {
        let text = std::fs::read_to_string(proc.join(table)).ok()?;
        listening_inode(&text, addr)
    })?;
    owner_of_socket(proc, inode)
}

/// One row of `/proc/net/tcp` or `/proc/net/tcp6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Socket {
    /// The local address.
    pub local: SocketAddr,
    /// In the LISTEN state (`0A`).
    pub listening: bool,
    /// The socket's inode (0 for one no longer owned by a process).
    pub inode: u64,
}

/// Parses a row such as
/// `0: 0100007F:1771 00000000:0000 0A 00000000:00000000 00:00000000 00000000 1000 0 31337 1 …`:
/// the local address (the kernel prints each 32-bit word of the address in the machine's byte
/// order, and the port in hex), the state, and the inode, the tenth field. `None` for the
/// header and anything else.
pub fn parse_line(line: &str) -> Option<Socket> {
    let mut fields = line.split_whitespace();
    fields.next()?.strip_suffix(':')?.parse::<u64>().ok()?;
    let local = parse_address(fields.next()?)?;
    let _remote = fields.next()?;
    let state = u8::from_str_radix(fields.next()?, 16).ok()?;
    // tx_queue:rx_queue, tr:tm->when, retrnsmt, uid, timeout, then the inode.
    let inode = fields.nth(5)?.parse().ok()?;
    Some(Socket { local, listening: state == 0x0A, inode })
}

/// `0100007F:1771` or 32 hex digits and a port.
fn parse_address(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |hex: &str| u32::from_str_radix(hex, 16).ok().map(u32::to_ne_bytes);
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(ip)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_mut(4).enumerate() {
                chunk.copy_from_slice(&word(ip.get(i * 8..i * 8 + 8)?)?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// The inode of the socket in `table` listening on `addr`'s port at an address that covers
/// `addr`: the same address (IPv4-mapped counts), or an unspecified one on either side.
pub fn listening_inode(table: &str, addr: SocketAddr) -> Option<u64> {
    let covers = |local: IpAddr| {
        local.is_unspecified() || addr.ip().is_unspecified() || local.to_canonical() == addr.ip().to_canonical()
    };
    table
        .lines()
        .filter_map(parse_line)
        .find(|s| s.listening && s.inode != 0 && s.local.port() == addr.port() && covers(s.local.ip()))
        .map(|s| s.inode)
}

/// The first process (lowest pid) with a descriptor on `socket:[inode]`, and its name.
fn owner_of_socket(proc: &Path, inode: u64) -> Option<Owner> {
    let target = format!("socket:[{inode}]");
    let mut pids: Vec<u32> =
        std::fs::read_dir(proc).ok()?.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok()).collect();
    pids.sort_unstable();
    pids.into_iter().find_map(|pid| {
        let dir = proc.join(pid.to_string());
        let mut fds = std::fs::read_dir(dir.join("fd")).ok()?;
        fds.any(|fd| fd.is_ok_and(|fd| std::fs::read_link(fd.path()).is_ok_and(|link| link == Path::new(&target))))
            .then(|| {
                let name = std::fs::read_to_string(dir.join("comm")).ok()?;
                Some(Owner { pid, name: name.trim_end().to_owned() })
            })
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1771 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 31337 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1771 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000  1000        0 0 1 0000000000000000 20 4 30 10 -1
   2: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0
";

    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 777 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:1F91 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 778 1 0000000000000000 100 0 0 10 0
";

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    // The tables above are as a little-endian machine (x86-64, arm64) prints them.
    #[cfg(target_endian = "little")]
    #[test]
    fn proc_net_tcp_rows_give_the_address_state_and_inode() {
        let rows: Vec<Socket> = TCP.lines().filter_map(parse_line).collect();
        assert_eq!(
            rows,
            [
                Socket { local: addr("127.0.0.1:6001"), listening: true, inode: 31337 },
                Socket { local: addr("127.0.0.1:6001"), listening: false, inode: 0 },
                Socket { local: addr("0.0.0.0:80"), listening: true, inode: 4242 },
            ]
        );
        assert_eq!(parse_line(TCP.lines().next().unwrap()), None, "the header");
        assert_eq!(parse_line("   3: 0100007F:1771 garbage"), None);
        let rows: Vec<Socket> = TCP6.lines().filter_map(parse_line).collect();
        assert_eq!(rows[0].local, addr("[::]:8080"));
        assert_eq!(rows[1].local, addr("[::1]:8081"));
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn the_listening_socket_that_covers_the_address_is_found() {
        assert_eq!(listening_inode(TCP, addr("127.0.0.1:6001")), Some(31337));
        assert_eq!(listening_inode(TCP, addr("0.0.0.0:6001")), Some(31337));
        assert_eq!(listening_inode(TCP, addr("127.0.0.2:6001")), None, "another address, same port");
        assert_eq!(listening_inode(TCP, addr("127.0.0.1:80")), Some(4242), "0.0.0.0 covers every address");
        assert_eq!(listening_inode(TCP, addr("127.0.0.1:6002")), None);
        assert_eq!(listening_inode(TCP6, addr("127.0.0.1:8080")), Some(777), "[::] covers IPv4 too");
        assert_eq!(listening_inode(TCP6, addr("[::1]:8081")), Some(778));
    }

    #[cfg(unix)]
    #[test]
    fn the_process_with_a_descriptor_on_the_socket_is_named() {
        let proc = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(proc.path().join("net")).unwrap();
        std::fs::write(proc.path().join("net/tcp"), TCP).unwrap();
        std::fs::write(proc.path().join("net/tcp6"), TCP6).unwrap();
        for (pid, name, sockets) in [(1, "init", &[5u64][..]), (4242, "node", &[9, 31337]), (4300, "node", &[31337])] {
            let fd = proc.path().join(format!("{pid}/fd"));
            std::fs::create_dir_all(&fd).unwrap();
            std::fs::write(proc.path().join(format!("{pid}/comm")), format!("{name}\n")).unwrap();
            for (i, inode) in sockets.iter().enumerate() {
                std::os::unix::fs::symlink(format!("socket:[{inode}]"), fd.join((i + 3).to_string())).unwrap();
            }
        }
        std::fs::create_dir_all(proc.path().join("self")).unwrap();
        let listening = addr("127.0.0.1:6001");
        let owner = of_in(proc.path(), listening);
        if cfg!(target_endian = "little") {
            assert_eq!(owner, Some(Owner { pid: 4242, name: "node".into() }));
            assert_eq!(owner.unwrap().to_string(), "node, pid 4242");
        }
        assert_eq!(of_in(proc.path(), addr("127.0.0.1:6999")), None, "nobody listens there");
        assert_eq!(of_in(&proc.path().join("missing"), listening), None, "no /proc at all");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_is_found_holding_its_own_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let owner = of(listener.local_addr().unwrap()).expect("our own socket is readable");
        let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
        assert_eq!(owner, Owner { pid: std::process::id(), name: comm.trim_end().to_owned() });
    }
}
