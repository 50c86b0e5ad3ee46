//! Requests to addresses users choose (webhook URLs): the SSRF guard.
//!
//! A URL must be `http(s)://host[:port]/…` without credentials. Its host is
//! resolved and every address checked: loopback, private, link-local,
//! unique-local, carrier-grade NAT, multicast, documentation, reserved and
//! cloud-metadata addresses are refused, in IPv4, IPv6 and the IPv6 forms
//! that embed an IPv4 address (mapped, NAT64, 6to4). Names that mean "this
//! network" (`localhost`, `*.internal`, `metadata.*`) are refused without
//! asking DNS. The check runs at registration, for a clear error, and again
//! for every connection at delivery, inside the HTTP client's resolver, so
//! a name whose DNS changed since (rebinding) is refused too. Redirects are
//! never followed. Operators who deliver inside their own network list
//! those networks in `allow` (`--outbound-allow 10.0.0.0/8`).
//!
//! The resolver is injectable: tests map names to addresses without DNS.

use crate::providers::BoxFuture;
pub use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// Name resolution, as the guard and the webhook client use it.
pub trait Resolve: Send + Sync + 'static {
    fn resolve<'a>(&'a self, host: &'a str, port: u16) -> BoxFuture<'a, std::io::Result<Vec<SocketAddr>>>;
}

/// The operating system's resolver.
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve<'a>(&'a self, host: &'a str, port: u16) -> BoxFuture<'a, std::io::Result<Vec<SocketAddr>>> {
        Box::pin(async move { Ok(tokio::net::lookup_host((host, port)).await?.collect()) })
    }
}

/// Why a URL is refused. Its text is what the integrator and the failure
/// log see: it never says whether anything answers at the address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("must be an http:// or https:// URL with a host: {0}")]
    Malformed(String),
    #[error("must not carry a user name or password; authenticate with the signature instead")]
    Credentials,
    #[error("refused by policy: {0} is not a public address")]
    Policy(String),
    #[error("cannot resolve the host")]
    Unresolved,
}

/// The SSRF policy and the resolver it checks with.
#[derive(Clone)]
pub struct Guard {
    resolver: Arc<dyn Resolve>,
    allow: Arc<Vec<IpNet>>,
}

impl Guard {
    pub fn new(resolver: Arc<dyn Resolve>, allow: Vec<IpNet>) -> Guard {
        Guard { resolver, allow: Arc::new(allow) }
    }

    /// Whether the policy lets a request reach `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        self.allow.iter().any(|n| n.contains(&ip)) || !forbidden(ip)
    }

    /// Checks a URL's shape and names (no DNS).
    pub fn parse(&self, url: &str) -> Result<reqwest::Url, Refused> {
        let parsed = reqwest::Url::parse(url).map_err(|e| Refused::Malformed(e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Refused::Malformed(format!("scheme {:?}", parsed.scheme())));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(Refused::Credentials);
        }
        match parsed.host() {
            None => Err(Refused::Malformed("no host".into())),
            Some(url::Host::Domain("")) => Err(Refused::Malformed("no host".into())),
            Some(url::Host::Domain(d)) if local_name(d) => Err(Refused::Policy(d.to_owned())),
            Some(url::Host::Ipv4(ip)) if !self.permits(IpAddr::V4(ip)) => {
                Err(Refused::Policy(ip.to_string()))
            }
            Some(url::Host::Ipv6(ip)) if !self.permits(IpAddr::V6(ip)) => {
                Err(Refused::Policy(ip.to_string()))
            }
            Some(_) => Ok(parsed),
        }
    }

    /// The full check: shape, names, and every address the host resolves to.
    pub async fn check(&self, url: &str) -> Result<reqwest::Url, Refused> {
        let parsed = self.parse(url)?;
        if let Some(url::Host::Domain(d)) = parsed.host() {
            let port = parsed.port_or_known_default().unwrap_or(443);
            self.resolve_public(d, port).await?;
        }
        Ok(parsed)
    }

    /// Resolves `host`; refused unless every address is permitted (one bad
    /// address among good ones is how rebinding attacks hedge).
    pub async fn resolve_public(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, Refused> {
        if local_name(host) {
            return Err(Refused::Policy(host.to_owned()));
        }
        let addrs = self.resolver.resolve(host, port).await.map_err(|_| Refused::Unresolved)?;
        if addrs.is_empty() {
            return Err(Refused::Unresolved);
        }
        if let Some(bad) = addrs.iter().find(|a| !self.permits(a.ip())) {
            return Err(Refused::Policy(format!("{host} ({})", bad.ip())));
        }
        Ok(addrs)
    }
}

/// The guard as the webhook client's resolver: every connection it opens
/// to a name goes through the policy.
impl reqwest::dns::Resolve for Guard {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.clone();
        Box::pin(async move {
            let addrs = guard.resolve_public(name.as_str(), 0).await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Names that only mean something inside a network.
fn local_name(host: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    h == "localhost"
        || h.ends_with(".localhost")
        || h.ends_with(".internal")
        || h.ends_with(".local")
        || h.ends_with(".home.arpa")
        || h == "metadata"
        || h.starts_with("metadata.")
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0
        || a >= 240
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 192 && b == 88 && c == 99)
        || (a == 198 && (b == 18 || b == 19))
}

/// `127.0.0.0/8` and `::1/128`: for tests and demos that deliver to loopback.
pub fn loopback() -> Vec<IpNet> {
    let v4 = ipnet::Ipv4Net::new(Ipv4Addr::new(127, 0, 0, 0), 8).ok().map(IpNet::V4);
    let v6 = ipnet::Ipv6Net::new(Ipv6Addr::LOCALHOST, 128).ok().map(IpNet::V6);
    [v4, v6].into_iter().flatten().collect()
}

/// Whether `ip` is one the guard refuses (before the operator's allow-list).
pub fn forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return forbidden_v4(v4);
            }
            let s = v6.segments();
            v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local, AWS's fd00:ec2::254
                || (s[0] & 0xffc0) == 0xfe80 // link local
                || (s[0] & 0xffc0) == 0xfec0 // site local (deprecated)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0) // discard
                || (s[0] == 0x2001 && s[1] < 0x0200) // IETF protocol assignments, Teredo
        }
    }
}

/// The IPv4 address inside a mapped (`::ffff:a.b.c.d`), compatible,
/// NAT64 (`64:ff9b::/96`) or 6to4 (`2002::/16`) address.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    if s[..6] == [0, 0, 0, 0, 0, 0] && !(s[6] == 0 && s[7] <= 1) {
        return Some(tail);
    }
    if s[0] == 0x0064 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return Some(tail);
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8));
    }
    None
}

/// Names to fixed answers, without DNS: tests, and operators who pin
/// names. `other` answers every name not in the table.
#[derive(Default)]
pub struct StaticResolver(
    pub std::sync::Mutex<std::collections::HashMap<String, Vec<IpAddr>>>,
    pub Option<IpAddr>,
);

impl StaticResolver {
    pub fn new(names: &[(&str, &[IpAddr])]) -> StaticResolver {
        let map = names.iter().map(|(n, ips)| (n.to_string(), ips.to_vec())).collect();
        StaticResolver(std::sync::Mutex::new(map), None)
    }

    /// Every name resolves to `ip` (tests: `127.0.0.1`, so nothing leaves
    /// the machine).
    pub fn everything_to(ip: IpAddr) -> StaticResolver {
        StaticResolver(std::sync::Mutex::default(), Some(ip))
    }

    /// What `host` resolves to from now on.
    pub fn set(&self, host: &str, ips: &[IpAddr]) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(host.to_owned(), ips.to_vec());
    }
}

impl Resolve for StaticResolver {
    fn resolve<'a>(&'a self, host: &'a str, port: u16) -> BoxFuture<'a, std::io::Result<Vec<SocketAddr>>> {
        let found =
            self.0.lock().unwrap_or_else(|e| e.into_inner()).get(host).cloned().or(self.1.map(|ip| vec![ip]));
        Box::pin(async move {
            found
                .map(|ips| ips.into_iter().map(|ip| SocketAddr::new(ip, port)).collect())
                .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such name"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    fn guard(names: &[(&str, &str)]) -> Guard {
        let map = names.iter().map(|(n, ip)| (n.to_string(), vec![ip.parse().expect("ip")])).collect();
        Guard::new(Arc::new(StaticResolver(Mutex::new(map), None)), Vec::new())
    }

    #[tokio::test]
    async fn every_spelling_of_an_internal_address_is_refused() {
        let g = guard(&[
            ("127.0.0.1.nip.io", "127.0.0.1"),
            ("localtest.me", "127.0.0.1"),
            ("metadata.google.internal", "169.254.169.254"),
            ("v6.example", "::1"),
            ("mapped.example", "::ffff:10.0.0.1"),
            ("hooks.example", "93.184.216.34"),
        ]);
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://[fd00:ec2::254]/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://metadata/",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://100.64.0.1/",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:169.254.169.254]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[2002:7f00:1::]/",
            "http://[fe80::1]/",
            "http://[ff02::1]/",
            "http://224.0.0.1/",
            "http://127.0.0.1.nip.io/",
            "http://localtest.me/",
            "http://localhost:8080/",
            "http://api.localhost/",
            "http://v6.example/",
            "http://mapped.example/",
        ] {
            let got = g.check(url).await;
            assert!(matches!(got, Err(Refused::Policy(_))), "{url}: {got:?}");
        }
        assert!(g.check("https://hooks.example/in").await.is_ok());
    }

    #[tokio::test]
    async fn credentials_other_schemes_and_unknown_names_are_refused() {
        let g = guard(&[("hooks.example", "93.184.216.34")]);
        assert_eq!(g.check("https://user:pw@hooks.example/").await, Err(Refused::Credentials));
        assert_eq!(g.check("https://user@hooks.example/").await, Err(Refused::Credentials));
        assert!(matches!(g.check("ftp://hooks.example/").await, Err(Refused::Malformed(_))));
        assert!(matches!(g.check("file:///etc/passwd").await, Err(Refused::Malformed(_))));
        assert_eq!(g.check("https://nowhere.example/").await, Err(Refused::Unresolved));
    }

    #[tokio::test]
    async fn a_name_with_one_internal_address_among_public_ones_is_refused() {
        let map = HashMap::from([(
            "hedge.example".to_owned(),
            vec!["93.184.216.34".parse().expect("ip"), "127.0.0.1".parse().expect("ip")],
        )]);
        let g = Guard::new(Arc::new(StaticResolver(Mutex::new(map), None)), Vec::new());
        assert!(matches!(g.check("https://hedge.example/").await, Err(Refused::Policy(_))));
    }

    #[tokio::test]
    async fn the_operators_allow_list_opens_their_own_networks_only() {
        let map = HashMap::from([("crm.corp".to_owned(), vec!["10.2.3.4".parse().expect("ip")])]);
        let g = Guard::new(
            Arc::new(StaticResolver(Mutex::new(map), None)),
            vec!["10.0.0.0/8".parse().expect("net")],
        );
        assert!(g.check("http://crm.corp/hook").await.is_ok());
        assert!(g.check("http://10.9.9.9/").await.is_ok());
        assert!(matches!(g.check("http://192.168.0.1/").await, Err(Refused::Policy(_))));
        assert!(matches!(g.check("http://169.254.169.254/").await, Err(Refused::Policy(_))));
    }

    #[test]
    fn public_addresses_pass() {
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:93.184.216.34"] {
            assert!(!forbidden(ip.parse().expect("ip")), "{ip}");
        }
    }
}
