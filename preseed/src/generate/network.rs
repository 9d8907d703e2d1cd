//! Network config as MAAS's `preseed_network.py` writes it (maas-preseed.md §5, netrender.md §1):
//! v2 (netplan) for an Ubuntu base from 16.04, with source routing from 18.04; v1 otherwise.
//! Interfaces come parents first; one default gateway per family.

use std::net::IpAddr;

use yaml_serde::{Mapping, Value};

use super::machine::{Address, AddressMode, Machine};
use super::{seq, GenError};

/// Which network config version, from the base OS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2 { source_routing: bool },
}

pub fn version_for(base_os: &str, ubuntu: Option<(u32, u32)>, force_v1: bool) -> Version {
    if force_v1 || base_os != "ubuntu" {
        return Version::V1;
    }
    match ubuntu {
        Some(v) if v >= (18, 4) => Version::V2 {
            source_routing: true,
        },
        Some(v) if v >= (16, 4) => Version::V2 {
            source_routing: false,
        },
        _ => Version::V1,
    }
}

const BOND_MODES: &[&str] = &[
    "balance-rr",
    "active-backup",
    "balance-xor",
    "broadcast",
    "802.3ad",
    "balance-tlb",
    "balance-alb",
];
const HASH_POLICIES: &[&str] = &["layer2", "layer2+3", "layer3+4", "encap2+3", "encap3+4"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Physical,
    Bond,
    Vlan,
    Bridge,
}

/// One interface of any kind, normalised.
struct Iface<'a> {
    kind: Kind,
    name: String,
    /// Input key, for errors (`interfaces[0]`, `bonds[1]`...).
    key: String,
    mac: Option<String>,
    mtu: u32,
    parents: Vec<String>,
    addresses: &'a [Address],
    params: Vec<(String, Value)>,
    vlan: Option<(String, u16)>,
    bond_mode: Option<String>,
    bond_params: Vec<(String, Value)>,
    bridge: Option<(bool, u32)>,
}

/// A parsed address entry.
struct Addr {
    mode: AddressMode,
    /// `<ip>/<prefix>` for static.
    cidr_addr: Option<String>,
    /// The subnet (`10.0.0.0/24`).
    net: Option<String>,
    v6: bool,
    gateway: Option<String>,
    dns: Vec<String>,
    search: Vec<String>,
    routes: Vec<(String, String, Option<u32>)>,
}

/// The `network_commands` + `network` fragment.
pub fn generate(m: &Machine, version: Version) -> Result<Value, GenError> {
    let ifaces = collect(m)?;
    let ordered = parents_first(ifaces)?;
    let mut parsed = Vec::new();
    for i in &ordered {
        let mut list = Vec::new();
        for (k, a) in i.addresses.iter().enumerate() {
            list.push(parse_addr(&format!("{}.addresses[{k}]", i.key), a)?);
        }
        parsed.push(list);
    }
    let search = default_search(m);
    let network = match version {
        Version::V1 => v1(m, &ordered, &parsed, &search),
        Version::V2 { source_routing } => v2(m, &ordered, &parsed, &search, source_routing),
    };
    let mut out = Mapping::new();
    out.insert(
        "network_commands".into(),
        super::storage::builtin(&["curtin", "net-meta", "custom"]),
    );
    out.insert("network".into(), network);
    Ok(Value::Mapping(out))
}

fn default_search(m: &Machine) -> Vec<String> {
    let mut s = Vec::new();
    if let Some(d) = &m.domain {
        s.push(d.clone());
    }
    for x in &m.dns.search {
        if !s.contains(x) {
            s.push(x.clone());
        }
    }
    s
}

/// `mac`, lower-cased, if it is one; the error names `{key}.mac`.
fn check_mac(key: &str, mac: &str) -> Result<String, GenError> {
    let parts: Vec<&str> = mac.split(':').collect();
    if parts.len() != 6
        || !parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
    {
        return Err(GenError::new(
            &format!("{key}.mac"),
            format!("{mac:?} is not a MAC address (aa:bb:cc:dd:ee:ff)"),
        ));
    }
    Ok(mac.to_ascii_lowercase())
}

fn check_name(key: &str, name: &str) -> Result<(), GenError> {
    if name.is_empty() || name.len() > 15 || name.contains(['/', ' ', ':']) {
        return Err(GenError::new(
            key,
            format!("{name:?} is not an interface name (1-15 characters, no '/', ':' or spaces)"),
        ));
    }
    Ok(())
}

fn collect(m: &Machine) -> Result<Vec<Iface<'_>>, GenError> {
    let mut out: Vec<Iface> = Vec::new();
    for (i, p) in m.interfaces.iter().enumerate() {
        let key = format!("interfaces[{i}]");
        check_name(&format!("{key}.name"), &p.name)?;
        let mac = check_mac(&key, &p.mac)?;
        let params = p
            .params
            .iter()
            .filter(|(k, _)| !(k.starts_with("bond") || k.starts_with("bridge") || *k == "mtu"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        out.push(Iface {
            kind: Kind::Physical,
            name: p.name.clone(),
            key,
            mac: Some(mac),
            mtu: p.mtu.unwrap_or(1500),
            parents: vec![],
            addresses: &p.addresses,
            params,
            vlan: None,
            bond_mode: None,
            bond_params: vec![],
            bridge: None,
        });
    }
    for (i, b) in m.bonds.iter().enumerate() {
        let key = format!("bonds[{i}]");
        check_name(&format!("{key}.name"), &b.name)?;
        if !BOND_MODES.contains(&b.mode.as_str()) {
            return Err(GenError::new(
                &format!("{key}.mode"),
                format!(
                    "unknown bond mode {:?}; expected one of {}",
                    b.mode,
                    BOND_MODES.join(", ")
                ),
            ));
        }
        if b.members.is_empty() {
            return Err(GenError::new(
                &format!("{key}.members"),
                "a bond needs members",
            ));
        }
        let mut bond_params = Vec::new();
        for (k, v) in &b.params {
            let canon = k
                .trim_start_matches("bond-")
                .trim_start_matches("bond_")
                .replace('_', "-");
            let known = [
                "miimon",
                "lacp-rate",
                "xmit-hash-policy",
                "updelay",
                "downdelay",
                "num-grat-arp",
                "num-unsol-na",
            ];
            if !known.contains(&canon.as_str()) {
                return Err(GenError::new(
                    &format!("{key}.params.{k}"),
                    format!(
                        "unknown bond parameter; expected one of {}",
                        known.join(", ")
                    ),
                ));
            }
            let text = scalar(v);
            if canon == "xmit-hash-policy" && !HASH_POLICIES.contains(&text.as_str()) {
                return Err(GenError::new(
                    &format!("{key}.params.{k}"),
                    format!(
                        "unknown hash policy {text:?}; expected one of {}",
                        HASH_POLICIES.join(", ")
                    ),
                ));
            }
            if canon == "lacp-rate" && !["fast", "slow"].contains(&text.as_str()) {
                return Err(GenError::new(
                    &format!("{key}.params.{k}"),
                    format!("{text:?} is not fast or slow"),
                ));
            }
            // MAAS drops parameters that do not apply to the mode.
            if canon == "lacp-rate" && b.mode != "802.3ad" {
                continue;
            }
            if (canon == "num-grat-arp" || canon == "num-unsol-na") && b.mode != "active-backup" {
                continue;
            }
            bond_params.push((canon, v.clone()));
        }
        let mac = b.mac.as_deref().map(|m| check_mac(&key, m)).transpose()?;
        out.push(Iface {
            kind: Kind::Bond,
            name: b.name.clone(),
            key,
            mac,
            mtu: b.mtu.unwrap_or(1500),
            parents: b.members.clone(),
            addresses: &b.addresses,
            params: vec![],
            vlan: None,
            bond_mode: Some(b.mode.clone()),
            bond_params,
            bridge: None,
        });
    }
    for (i, v) in m.vlans.iter().enumerate() {
        let key = format!("vlans[{i}]");
        if v.id == 0 || v.id > 4094 {
            return Err(GenError::new(
                &format!("{key}.id"),
                format!("{} is not a VLAN id (1-4094)", v.id),
            ));
        }
        let name = v
            .name
            .clone()
            .unwrap_or_else(|| format!("{}.{}", v.link, v.id));
        check_name(&format!("{key}.name"), &name)?;
        out.push(Iface {
            kind: Kind::Vlan,
            name,
            key,
            mac: None,
            mtu: v.mtu.unwrap_or(1500),
            parents: vec![v.link.clone()],
            addresses: &v.addresses,
            params: vec![],
            vlan: Some((v.link.clone(), v.id)),
            bond_mode: None,
            bond_params: vec![],
            bridge: None,
        });
    }
    for (i, b) in m.bridges.iter().enumerate() {
        let key = format!("bridges[{i}]");
        check_name(&format!("{key}.name"), &b.name)?;
        if b.members.is_empty() {
            return Err(GenError::new(
                &format!("{key}.members"),
                "a bridge needs members",
            ));
        }
        let mac = b.mac.as_deref().map(|m| check_mac(&key, m)).transpose()?;
        out.push(Iface {
            kind: Kind::Bridge,
            name: b.name.clone(),
            key,
            mac,
            mtu: b.mtu.unwrap_or(1500),
            parents: b.members.clone(),
            addresses: &b.addresses,
            params: vec![],
            vlan: None,
            bond_mode: None,
            bond_params: vec![],
            bridge: Some((b.stp, b.forward_delay)),
        });
    }
    // Names unique; parents exist; a physical or bond is enslaved at most once.
    for (i, f) in out.iter().enumerate() {
        if out[..i].iter().any(|o| o.name == f.name) {
            return Err(GenError::new(
                &format!("{}.name", f.key),
                format!("interface {} is defined twice", f.name),
            ));
        }
        for p in &f.parents {
            if !out.iter().any(|o| &o.name == p) {
                let field = if f.kind == Kind::Vlan {
                    "link"
                } else {
                    "members"
                };
                return Err(GenError::new(
                    &format!("{}.{field}", f.key),
                    format!("no interface named {p:?}"),
                ));
            }
        }
        if f.kind != Kind::Vlan {
            for p in &f.parents {
                if let Some(other) = out[..i]
                    .iter()
                    .find(|o| o.kind != Kind::Vlan && o.parents.contains(p))
                {
                    return Err(GenError::new(
                        &format!("{}.members", f.key),
                        format!("{p} is already a member of {}", other.name),
                    ));
                }
            }
        }
    }
    // Bonds and bridges take their first member's MAC unless given, as MAAS does.
    for i in 0..out.len() {
        if out[i].mac.is_none() && out[i].kind != Kind::Vlan {
            out[i].mac = first_mac(&out, &out[i].parents[0], 0);
        }
    }
    Ok(out)
}

fn first_mac(all: &[Iface], name: &str, depth: usize) -> Option<String> {
    let f = all.iter().find(|o| o.name == name)?;
    if let Some(m) = &f.mac {
        return Some(m.clone());
    }
    if depth > all.len() {
        return None;
    }
    first_mac(all, f.parents.first()?, depth + 1)
}

fn parents_first(mut rest: Vec<Iface<'_>>) -> Result<Vec<Iface<'_>>, GenError> {
    let mut done: Vec<Iface> = Vec::new();
    while !rest.is_empty() {
        let Some(pos) = rest
            .iter()
            .position(|f| f.parents.iter().all(|p| done.iter().any(|d| &d.name == p)))
        else {
            return Err(GenError::new(
                &rest[0].key,
                "interfaces depend on each other in a cycle",
            ));
        };
        done.push(rest.remove(pos));
    }
    Ok(done)
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => crate::yaml::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

fn parse_ip(key: &str, s: &str) -> Result<IpAddr, GenError> {
    s.parse()
        .map_err(|_| GenError::new(key, format!("{s:?} is not an IP address")))
}

/// `10.0.0.0/24` -> (network address, prefix).
fn parse_cidr(key: &str, s: &str) -> Result<(IpAddr, u8), GenError> {
    let (ip, len) = s
        .split_once('/')
        .ok_or_else(|| GenError::new(key, format!("{s:?} is not a CIDR (e.g. 10.0.0.0/24)")))?;
    let ip = parse_ip(key, ip)?;
    let len: u8 = len
        .parse()
        .map_err(|_| GenError::new(key, format!("{s:?} has a bad prefix length")))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if len > max {
        return Err(GenError::new(key, format!("{s:?} has a bad prefix length")));
    }
    Ok((ip, len))
}

fn masked(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let m = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            IpAddr::V4((u32::from(a) & m).into())
        }
        IpAddr::V6(a) => {
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            IpAddr::V6((u128::from(a) & m).into())
        }
    }
}

fn parse_addr(key: &str, a: &Address) -> Result<Addr, GenError> {
    let net = match &a.cidr {
        Some(c) => Some(parse_cidr(&format!("{key}.cidr"), c)?),
        None => None,
    };
    let mut out = Addr {
        mode: a.mode,
        cidr_addr: None,
        net: None,
        v6: net.is_some_and(|(ip, _)| ip.is_ipv6()),
        gateway: None,
        dns: a.dns.clone(),
        search: a.search.clone(),
        routes: Vec::new(),
    };
    for (k, d) in a.dns.iter().enumerate() {
        parse_ip(&format!("{key}.dns[{k}]"), d)?;
    }
    match a.mode {
        AddressMode::Static => {
            let ipkey = format!("{key}.ip");
            let text =
                a.ip.as_deref()
                    .ok_or_else(|| GenError::new(&ipkey, "a static address needs an ip"))?;
            let (ip, len) = match (text.split_once('/'), net) {
                (Some(_), _) => parse_cidr(&ipkey, text)?,
                (None, Some((_, len))) => (parse_ip(&ipkey, text)?, len),
                (None, None) => {
                    return Err(GenError::new(
                        &format!("{key}.cidr"),
                        "a static address needs a cidr (or an ip with /prefix)",
                    ))
                }
            };
            if let Some((nip, nlen)) = net {
                if nlen != len
                    || masked(ip, nlen) != masked(nip, nlen)
                    || ip.is_ipv4() != nip.is_ipv4()
                {
                    return Err(GenError::new(
                        &ipkey,
                        format!("{text} is not in {}", a.cidr.as_deref().unwrap_or("")),
                    ));
                }
            }
            out.cidr_addr = Some(format!("{ip}/{len}"));
            out.net = Some(format!("{}/{len}", masked(ip, len)));
            out.v6 = ip.is_ipv6();
            if let Some(g) = &a.gateway {
                let gkey = format!("{key}.gateway");
                let gip = parse_ip(&gkey, g)?;
                if gip.is_ipv4() != ip.is_ipv4() || masked(gip, len) != masked(ip, len) {
                    return Err(GenError::new(
                        &gkey,
                        format!("{g} is not in {}/{len}", masked(ip, len)),
                    ));
                }
                out.gateway = Some(g.clone());
            }
            for (k, r) in a.routes.iter().enumerate() {
                let rkey = format!("{key}.routes[{k}]");
                let (rip, rlen) = parse_cidr(&format!("{rkey}.to"), &r.to)?;
                parse_ip(&format!("{rkey}.via"), &r.via)?;
                out.routes.push((
                    format!("{}/{rlen}", masked(rip, rlen)),
                    r.via.clone(),
                    r.metric,
                ));
            }
        }
        _ => {
            for (field, set) in [
                ("ip", a.ip.is_some()),
                ("gateway", a.gateway.is_some()),
                ("routes", !a.routes.is_empty()),
            ] {
                if set {
                    return Err(GenError::new(
                        &format!("{key}.{field}"),
                        "only used with mode: static",
                    ));
                }
            }
            out.net = a.cidr.clone();
        }
    }
    Ok(out)
}

/// The interface and address index holding the default gateway of each family: the first
/// static address with a gateway, parents first (MAAS: one default gateway per family).
fn default_gateways(parsed: &[Vec<Addr>]) -> [Option<(usize, usize)>; 2] {
    let mut out = [None, None];
    for (i, list) in parsed.iter().enumerate() {
        for (k, a) in list.iter().enumerate() {
            if a.gateway.is_some() {
                let fam = a.v6 as usize;
                if out[fam].is_none() {
                    out[fam] = Some((i, k));
                }
            }
        }
    }
    out
}

fn v1(m: &Machine, ifaces: &[Iface], parsed: &[Vec<Addr>], search: &[String]) -> Value {
    let gws = default_gateways(parsed);
    let mut config = Vec::new();
    let mut any_static = false;
    for (i, f) in ifaces.iter().enumerate() {
        let mut e = Mapping::new();
        e.insert("id".into(), f.name.clone().into());
        e.insert("name".into(), f.name.clone().into());
        let t = match f.kind {
            Kind::Physical => "physical",
            Kind::Bond => "bond",
            Kind::Vlan => "vlan",
            Kind::Bridge => "bridge",
        };
        e.insert("type".into(), t.into());
        if let Some(mac) = &f.mac {
            e.insert("mac_address".into(), mac.clone().into());
        }
        e.insert("mtu".into(), f.mtu.into());
        for (k, v) in &f.params {
            // v1 wants 0/1 for booleans, as MAAS writes them.
            let v = match v {
                Value::Bool(b) => Value::from(*b as u8),
                other => other.clone(),
            };
            e.insert(k.clone().into(), v);
        }
        match f.kind {
            Kind::Vlan => {
                let (link, id) = f.vlan.clone().unwrap();
                e.insert("vlan_link".into(), link.into());
                e.insert("vlan_id".into(), id.into());
            }
            Kind::Bond => {
                let mut members = f.parents.clone();
                members.sort();
                e.insert("bond_interfaces".into(), seq(members));
                let mut p = Mapping::new();
                p.insert("bond-mode".into(), f.bond_mode.clone().unwrap().into());
                for (k, v) in &f.bond_params {
                    p.insert(format!("bond-{k}").into(), v.clone());
                }
                e.insert("params".into(), Value::Mapping(p));
            }
            Kind::Bridge => {
                e.insert("bridge_interfaces".into(), seq(f.parents.clone()));
                let (stp, fd) = f.bridge.unwrap();
                let mut p = Mapping::new();
                p.insert("bridge_fd".into(), fd.into());
                p.insert("bridge_stp".into(), (stp as u8).into());
                e.insert("params".into(), Value::Mapping(p));
            }
            Kind::Physical => {}
        }
        let mut subnets = Vec::new();
        let mut dhcp: Option<&str> = None;
        for (k, a) in parsed[i].iter().enumerate() {
            match a.mode {
                AddressMode::Static => {
                    any_static = true;
                    let mut s = Mapping::new();
                    s.insert("type".into(), "static".into());
                    s.insert("address".into(), a.cidr_addr.clone().unwrap().into());
                    if gws[a.v6 as usize] == Some((i, k)) {
                        s.insert("gateway".into(), a.gateway.clone().unwrap().into());
                    }
                    if !a.dns.is_empty() {
                        s.insert("dns_nameservers".into(), seq(a.dns.clone()));
                    }
                    let srch = if a.search.is_empty() {
                        search.to_vec()
                    } else {
                        a.search.clone()
                    };
                    if !srch.is_empty() {
                        s.insert("dns_search".into(), seq(srch));
                    }
                    if !a.routes.is_empty() {
                        let routes = a
                            .routes
                            .iter()
                            .map(|(to, via, metric)| {
                                let mut r = Mapping::new();
                                r.insert("destination".into(), to.clone().into());
                                r.insert("gateway".into(), via.clone().into());
                                if let Some(mt) = metric {
                                    r.insert("metric".into(), (*mt).into());
                                }
                                Value::Mapping(r)
                            })
                            .collect();
                        s.insert("routes".into(), Value::Sequence(routes));
                    }
                    subnets.push(Value::Mapping(s));
                }
                AddressMode::Dhcp4 => dhcp = Some(merge_dhcp(dhcp, "dhcp4")),
                AddressMode::Dhcp6 => dhcp = Some(merge_dhcp(dhcp, "dhcp6")),
                AddressMode::Dhcp => {
                    let fam = match &a.net {
                        Some(n) if n.contains(':') => "dhcp6",
                        Some(_) => "dhcp4",
                        None => "dhcp",
                    };
                    dhcp = Some(merge_dhcp(dhcp, fam));
                }
                AddressMode::LinkUp => {}
            }
        }
        if subnets.is_empty() && dhcp.is_none() {
            subnets.push(Value::Mapping(single("type", "manual")));
        }
        if let Some(d) = dhcp {
            subnets.push(Value::Mapping(single("type", d)));
        }
        e.insert("subnets".into(), Value::Sequence(subnets));
        config.push(Value::Mapping(e));
    }
    // The global nameserver entry, unless every subnet is manual or DHCP (LP:1847537).
    if any_static && (!m.dns.servers.is_empty() || !search.is_empty()) {
        let mut ns = Mapping::new();
        ns.insert("type".into(), "nameserver".into());
        ns.insert("address".into(), seq(m.dns.servers.clone()));
        ns.insert("search".into(), seq(search.to_vec()));
        config.push(Value::Mapping(ns));
    }
    let mut n = Mapping::new();
    n.insert("version".into(), 1.into());
    n.insert("config".into(), Value::Sequence(config));
    Value::Mapping(n)
}

fn merge_dhcp(cur: Option<&'static str>, new: &'static str) -> &'static str {
    match cur {
        None => new,
        Some(c) if c == new => c,
        _ => "dhcp",
    }
}

fn single(k: &str, v: &str) -> Mapping {
    let mut m = Mapping::new();
    m.insert(k.into(), v.into());
    m
}

/// netplan bond parameter names (MAAS's table).
fn netplan_bond_key(k: &str) -> &str {
    match k {
        "miimon" => "mii-monitor-interval",
        "lacp-rate" => "lacp-rate",
        "xmit-hash-policy" => "transmit-hash-policy",
        "updelay" => "up-delay",
        "downdelay" => "down-delay",
        // sic: MAAS (and netplan) spell it this way.
        "num-grat-arp" => "gratuitious-arp",
        "num-unsol-na" => "gratuitious-arp",
        other => other,
    }
}

fn v2(
    m: &Machine,
    ifaces: &[Iface],
    parsed: &[Vec<Addr>],
    search: &[String],
    source_routing: bool,
) -> Value {
    let gws = default_gateways(parsed);
    let mut sections: [Mapping; 4] = Default::default();
    let mut table = 0u32;
    for (i, f) in ifaces.iter().enumerate() {
        let mut e = Mapping::new();
        match f.kind {
            Kind::Physical => {
                let mut mm = Mapping::new();
                mm.insert("macaddress".into(), f.mac.clone().unwrap().into());
                e.insert("match".into(), Value::Mapping(mm));
                e.insert("set-name".into(), f.name.clone().into());
            }
            Kind::Vlan => {
                let (link, id) = f.vlan.clone().unwrap();
                e.insert("id".into(), id.into());
                e.insert("link".into(), link.into());
            }
            Kind::Bond | Kind::Bridge => {
                let mut members = f.parents.clone();
                if f.kind == Kind::Bond {
                    members.sort();
                }
                e.insert("interfaces".into(), seq(members));
                if let Some(mac) = &f.mac {
                    e.insert("macaddress".into(), mac.clone().into());
                }
                let mut p = Mapping::new();
                if let Some(mode) = &f.bond_mode {
                    p.insert("mode".into(), mode.clone().into());
                    for (k, v) in &f.bond_params {
                        p.insert(netplan_bond_key(k).into(), v.clone());
                    }
                }
                if let Some((stp, fd)) = f.bridge {
                    p.insert("forward-delay".into(), fd.into());
                    p.insert("stp".into(), stp.into());
                }
                e.insert("parameters".into(), Value::Mapping(p));
            }
        }
        e.insert("mtu".into(), f.mtu.into());
        for (k, v) in &f.params {
            e.insert(k.clone().into(), v.clone());
        }
        let mut addrs = Vec::new();
        let mut routes = Vec::new();
        let mut policy = Vec::new();
        let mut dns = Vec::new();
        let mut srch: Vec<String> = Vec::new();
        let (mut d4, mut d6) = (false, false);
        let mut gateways = Vec::new();
        for (k, a) in parsed[i].iter().enumerate() {
            match a.mode {
                AddressMode::Static => {
                    addrs.push(a.cidr_addr.clone().unwrap());
                    if let Some(g) = &a.gateway {
                        let fam = a.v6 as usize;
                        if gws[fam] == Some((i, k)) {
                            gateways.push((if a.v6 { "gateway6" } else { "gateway4" }, g.clone()));
                        } else if source_routing && table < 252 {
                            // A secondary gateway gets its own routing table (MAAS's source routing).
                            table += 1;
                            let net = a.net.clone().unwrap();
                            routes.push(route(
                                if a.v6 { "::/0" } else { "0.0.0.0/0" },
                                g,
                                None,
                                Some(table),
                            ));
                            for (to, via, metric) in &a.routes {
                                routes.push(route(to, via, *metric, Some(table)));
                            }
                            let mut p1 = Mapping::new();
                            p1.insert("from".into(), net.clone().into());
                            p1.insert("table".into(), table.into());
                            p1.insert("priority".into(), 1000.into());
                            let mut p2 = Mapping::new();
                            p2.insert("from".into(), net.clone().into());
                            p2.insert("to".into(), net.into());
                            p2.insert("table".into(), 254.into());
                            policy.push(Value::Mapping(p1));
                            policy.push(Value::Mapping(p2));
                        }
                    }
                    for (to, via, metric) in &a.routes {
                        routes.push(route(to, via, *metric, None));
                    }
                    for d in &a.dns {
                        if !dns.contains(d) {
                            dns.push(d.clone());
                        }
                    }
                    for s in &a.search {
                        if !srch.contains(s) {
                            srch.push(s.clone());
                        }
                    }
                }
                AddressMode::Dhcp4 => d4 = true,
                AddressMode::Dhcp6 => d6 = true,
                AddressMode::Dhcp => match &a.net {
                    Some(n) if n.contains(':') => d6 = true,
                    Some(_) => d4 = true,
                    None => {
                        d4 = true;
                        d6 = true;
                    }
                },
                AddressMode::LinkUp => {}
            }
        }
        if !addrs.is_empty() {
            e.insert("addresses".into(), seq(addrs.clone()));
        }
        for (k, g) in gateways {
            e.insert(k.into(), g.into());
        }
        // Interfaces with static addresses and no DNS of their own get the defaults.
        if !addrs.is_empty() && dns.is_empty() {
            dns = m.dns.servers.clone();
        }
        if !addrs.is_empty() && srch.is_empty() {
            srch = search.to_vec();
        }
        if !addrs.is_empty() && (!dns.is_empty() || !srch.is_empty()) {
            let mut ns = Mapping::new();
            ns.insert("search".into(), seq(srch));
            ns.insert("addresses".into(), seq(dns));
            e.insert("nameservers".into(), Value::Mapping(ns));
        }
        if !routes.is_empty() {
            e.insert("routes".into(), Value::Sequence(routes));
        }
        if !policy.is_empty() {
            e.insert("routing-policy".into(), Value::Sequence(policy));
        }
        if d4 {
            e.insert("dhcp4".into(), true.into());
        }
        if d6 {
            e.insert("dhcp6".into(), true.into());
        }
        let idx = match f.kind {
            Kind::Physical => 0,
            Kind::Vlan => 1,
            Kind::Bond => 2,
            Kind::Bridge => 3,
        };
        sections[idx].insert(f.name.clone().into(), Value::Mapping(e));
    }
    let mut n = Mapping::new();
    n.insert("version".into(), 2.into());
    for (name, s) in ["ethernets", "vlans", "bonds", "bridges"]
        .iter()
        .zip(sections)
    {
        if !s.is_empty() {
            n.insert((*name).into(), Value::Mapping(s));
        }
    }
    Value::Mapping(n)
}

fn route(to: &str, via: &str, metric: Option<u32>, table: Option<u32>) -> Value {
    let mut r = Mapping::new();
    r.insert("to".into(), to.into());
    r.insert("via".into(), via.into());
    if let Some(mt) = metric {
        r.insert("metric".into(), mt.into());
    }
    if let Some(t) = table {
        r.insert("table".into(), t.into());
    }
    Value::Mapping(r)
}
