//! Zero-downtime handover between two processes listening on the same port.
//!
//! Both processes bind with `SO_REUSEPORT`, forming one reuseport group in the kernel. Without
//! more, the kernel spreads new connections across the group by hash, and a process that closes
//! its listener resets the connections still queued on it. To hand over without a single failed
//! connection, the group gets a classic BPF steering program (`SO_ATTACH_REUSEPORT_CBPF`) that
//! returns one fixed socket index:
//!
//! 1. every process, right after it listens, steers to index 0 — the incumbent (for the very
//!    first process, itself), so a new release gets no traffic while it is verified;
//! 2. on handover the incumbent steers to index 1 (its successor), keeps accepting until its own
//!    queue is empty, then closes; the successor moves to index 0 and the stale program's index
//!    is out of range, so the kernel falls back to its hash over the one remaining socket.
//!
//! Needs Linux >= 4.6 and no privileges.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;

/// A listening TCP socket in a reuseport group.
pub fn bind_reuseport(addr: SocketAddr, backlog: i32) -> std::io::Result<std::net::TcpListener> {
    let domain = if addr.is_ipv4() {
        socket2::Domain::IPV4
    } else {
        socket2::Domain::IPV6
    };
    let s = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(backlog)?;
    Ok(s.into())
}

/// Attach a steering program to the listener's reuseport group: every new connection goes to
/// the socket at `index` (in join order); an index out of range falls back to the kernel hash.
pub fn steer_to(listener: &impl AsRawFd, index: u32) -> std::io::Result<()> {
    // BPF_RET | BPF_K: return the constant `index`.
    let mut code = [libc::sock_filter {
        code: (libc::BPF_RET | libc::BPF_K) as u16,
        jt: 0,
        jf: 0,
        k: index,
    }];
    let prog = libc::sock_fprog {
        len: code.len() as u16,
        filter: code.as_mut_ptr(),
    };
    // SAFETY: prog points at a valid one-instruction program for the duration of the call.
    let rc = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_REUSEPORT_CBPF,
            (&prog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::ErrorKind;
    use std::time::Duration;

    /// Connect `n` times; count how many connections each listener can accept.
    fn spread(
        a: &std::net::TcpListener,
        b: &std::net::TcpListener,
        addr: SocketAddr,
        n: usize,
    ) -> (usize, usize) {
        let clients: Vec<_> = (0..n)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        let count = |l: &std::net::TcpListener| {
            let mut c = 0;
            loop {
                match l.accept() {
                    Ok(_) => c += 1,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break c,
                    Err(e) => panic!("{e}"),
                }
            }
        };
        let r = (count(a), count(b));
        drop(clients);
        r
    }

    #[test]
    fn steering_moves_every_new_connection() {
        let first = bind_reuseport("127.0.0.1:0".parse().unwrap(), 128).unwrap();
        let addr = first.local_addr().unwrap();
        steer_to(&first, 0).unwrap();
        let second = bind_reuseport(addr, 128).unwrap();
        steer_to(&second, 0).unwrap();
        // The incumbent gets everything while the successor is verified.
        assert_eq!(spread(&first, &second, addr, 40), (40, 0));
        // Handover: everything to the successor; the incumbent's queue stays empty.
        steer_to(&first, 1).unwrap();
        assert_eq!(spread(&first, &second, addr, 40), (0, 40));
        drop(first);
        // Alone in the group, the successor gets everything despite the stale index.
        let clients: Vec<_> = (0..10)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        let mut accepted = 0;
        while second.accept().is_ok() {
            accepted += 1;
        }
        assert_eq!(accepted, 10);
        drop(clients);
    }
}
