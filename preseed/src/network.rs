//! The `network:` key: network config version 1 (typed) and version 2 (kept as given).
//!
//! Version 1 is what MAAS sends for non-Ubuntu bases and what deployer renders itself when the
//! target's cloud-init cannot take the config through; version 2 is only ever passed through,
//! so it is carried as the YAML value it was given. `raw` always holds the value as given:
//! curtin's net-meta writes it back verbatim.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Deserializer};
use yaml_serde::Value;

/// The `network:` value.
#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    /// The value as given (for passthrough and `OUTPUT_NETWORK_CONFIG`).
    pub raw: Value,
    pub body: Body,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// `version: 1` with its `config` list.
    V1(Vec<Entry>),
    /// `version: 2`: passed through, never parsed.
    V2,
    /// `config: disabled` (cloud-init's way to say "leave networking alone").
    Disabled,
}

/// One entry of a v1 `config` list, dispatched on `type`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Entry {
    Physical(Interface),
    Loopback(Interface),
    Infiniband(Interface),
    Bond(Interface),
    Bridge(Interface),
    Vlan(Interface),
    Nameserver(Nameserver),
    Route(Route),
}

/// Any interface-like entry. The type-specific keys are optional here and checked by
/// [`Network::validate`], so that a missing one is reported by name.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct Interface {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: String,
    #[serde(default, deserialize_with = "opt_lower")]
    pub mac_address: Option<String>,
    #[serde(default, deserialize_with = "opt_u32")]
    pub mtu: Option<u32>,
    #[serde(default)]
    pub subnets: Vec<Subnet>,
    /// bond-*, bridge_* and other parameters, as given.
    #[serde(default)]
    pub params: BTreeMap<String, Value>,
    /// bond: the member interface names.
    #[serde(default)]
    pub bond_interfaces: Vec<String>,
    /// bridge: the port names.
    #[serde(default)]
    pub bridge_interfaces: Vec<String>,
    /// vlan: the parent interface name.
    #[serde(default)]
    pub vlan_link: Option<String>,
    #[serde(default, deserialize_with = "opt_u32")]
    pub vlan_id: Option<u32>,
    #[serde(default, rename = "accept-ra", deserialize_with = "opt_bool")]
    pub accept_ra: Option<bool>,
    #[serde(default, deserialize_with = "opt_bool")]
    pub wakeonlan: Option<bool>,
    /// Keys deployer does not model, kept.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// One address configuration of an interface.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct Subnet {
    #[serde(rename = "type")]
    pub kind: SubnetType,
    #[serde(default, deserialize_with = "opt_string")]
    pub address: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    pub netmask: Option<String>,
    #[serde(default, deserialize_with = "opt_u32")]
    pub prefix: Option<u32>,
    #[serde(default, deserialize_with = "opt_string")]
    pub gateway: Option<String>,
    #[serde(default, deserialize_with = "words")]
    pub dns_nameservers: Vec<String>,
    #[serde(default, deserialize_with = "words")]
    pub dns_search: Vec<String>,
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default, deserialize_with = "opt_u32")]
    pub metric: Option<u32>,
    #[serde(default, deserialize_with = "opt_u32")]
    pub mtu: Option<u32>,
    #[serde(default)]
    pub control: Option<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum SubnetType {
    #[serde(rename = "static")]
    Static,
    #[serde(rename = "static6")]
    Static6,
    /// cloud-init reads `dhcp` as `dhcp4` (MAAS means both families; see docs/compatibility.md).
    #[serde(rename = "dhcp", alias = "dhcp4")]
    Dhcp4,
    #[serde(rename = "dhcp6")]
    Dhcp6,
    #[serde(rename = "ipv6_slaac")]
    Ipv6Slaac,
    #[serde(rename = "ipv6_dhcpv6-stateless")]
    Dhcpv6Stateless,
    #[serde(rename = "ipv6_dhcpv6-stateful")]
    Dhcpv6Stateful,
    #[default]
    #[serde(rename = "manual")]
    Manual,
}

impl SubnetType {
    pub fn is_static(self) -> bool {
        matches!(self, SubnetType::Static | SubnetType::Static6)
    }
}

/// A route: top-level `type: route` or an entry of a subnet's `routes`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct Route {
    /// `destination` (v1 docs, MAAS) or `network` (cloud-init's internal name).
    #[serde(default, alias = "network", deserialize_with = "opt_string")]
    pub destination: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    pub netmask: Option<String>,
    #[serde(default, deserialize_with = "opt_u32")]
    pub prefix: Option<u32>,
    #[serde(default, deserialize_with = "opt_string")]
    pub gateway: Option<String>,
    #[serde(default, deserialize_with = "opt_u32")]
    pub metric: Option<u32>,
}

/// A `type: nameserver` entry.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct Nameserver {
    #[serde(default, deserialize_with = "words")]
    pub address: Vec<String>,
    #[serde(default, deserialize_with = "words")]
    pub search: Vec<String>,
    #[serde(default)]
    pub interface: Option<String>,
}

/// An address with its prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Cidr {
    /// The network address (host bits cleared).
    pub fn network(&self) -> Cidr {
        let addr = match self.addr {
            IpAddr::V4(a) => {
                let m = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.prefix as u32)
                };
                IpAddr::V4((u32::from(a) & m).into())
            }
            IpAddr::V6(a) => {
                let m = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.prefix as u32)
                };
                IpAddr::V6((u128::from(a) & m).into())
            }
        };
        Cidr {
            addr,
            prefix: self.prefix,
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.network()
            == (Cidr {
                addr: ip,
                prefix: self.prefix,
            })
            .network()
    }

    pub fn is_v6(&self) -> bool {
        self.addr.is_ipv6()
    }
}

/// Parse `addr`, `addr/len`, `addr/netmask`, with an optional separate netmask or prefix
/// (cloud-init's rules: CIDR first, then `prefix`, then `netmask`, else 24 / 64).
pub fn parse_cidr(
    address: &str,
    netmask: Option<&str>,
    prefix: Option<u32>,
) -> Result<Cidr, String> {
    let (a, inline) = match address.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (address, None),
    };
    let addr: IpAddr = a
        .trim()
        .parse()
        .map_err(|_| format!("{address:?} is not an IP address"))?;
    let max = if addr.is_ipv6() { 128 } else { 32 };
    let prefix = match (inline, prefix, netmask) {
        (Some(p), _, _) => prefix_of(p, max)?,
        (None, Some(p), _) => p,
        (None, None, Some(m)) => prefix_of(m, max)?,
        (None, None, None) => {
            if addr.is_ipv6() {
                64
            } else {
                24
            }
        }
    };
    if prefix > max {
        return Err(format!("prefix /{prefix} is too long for {addr}"));
    }
    Ok(Cidr {
        addr,
        prefix: prefix as u8,
    })
}

/// A prefix length given as a number or as a netmask.
fn prefix_of(s: &str, max: u32) -> Result<u32, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<u32>() {
        return Ok(n);
    }
    let bits: u128 = match s.parse::<IpAddr>() {
        Ok(IpAddr::V4(m)) => (u32::from(m) as u128) << 96,
        Ok(IpAddr::V6(m)) => u128::from(m),
        Err(_) => return Err(format!("{s:?} is neither a prefix length nor a netmask")),
    };
    let ones = bits.leading_ones();
    if bits.checked_shl(ones).unwrap_or(0) != 0 {
        return Err(format!("netmask {s} is not contiguous"));
    }
    Ok(ones.min(max))
}

impl Subnet {
    /// The subnet's address with its prefix (static subnets).
    pub fn cidr(&self) -> Result<Option<Cidr>, String> {
        match &self.address {
            Some(a) => parse_cidr(a, self.netmask.as_deref(), self.prefix).map(Some),
            None => Ok(None),
        }
    }
}

impl Route {
    /// The destination; `default` is 0.0.0.0/0 or ::/0 by the gateway's family.
    pub fn cidr(&self) -> Result<Cidr, String> {
        let dest = self
            .destination
            .as_deref()
            .ok_or_else(|| "route has no destination".to_string())?;
        if dest == "default" {
            let v6 = self.gateway.as_deref().is_some_and(|g| g.contains(':'));
            return parse_cidr(if v6 { "::/0" } else { "0.0.0.0/0" }, None, None);
        }
        parse_cidr(dest, self.netmask.as_deref(), self.prefix)
    }
}

impl Entry {
    pub fn interface(&self) -> Option<&Interface> {
        match self {
            Entry::Physical(i)
            | Entry::Loopback(i)
            | Entry::Infiniband(i)
            | Entry::Bond(i)
            | Entry::Bridge(i)
            | Entry::Vlan(i) => Some(i),
            _ => None,
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Entry::Physical(_) => "physical",
            Entry::Loopback(_) => "loopback",
            Entry::Infiniband(_) => "infiniband",
            Entry::Bond(_) => "bond",
            Entry::Bridge(_) => "bridge",
            Entry::Vlan(_) => "vlan",
            Entry::Nameserver(_) => "nameserver",
            Entry::Route(_) => "route",
        }
    }
}

impl Network {
    /// Parse the value of the `network:` key. A value that itself holds a single `network:`
    /// key is unwrapped (the shape of curtin's OUTPUT_NETWORK_CONFIG file).
    pub fn from_value(value: &Value) -> Result<Network, String> {
        let mut v = value;
        if let Some(inner) = v.get("network") {
            if v.as_mapping().is_some_and(|m| m.len() == 1) {
                v = inner;
            }
        }
        let raw = v.clone();
        let config = v.get("config");
        if config.and_then(Value::as_str) == Some("disabled") {
            return Ok(Network {
                raw,
                body: Body::Disabled,
            });
        }
        let given = match v.get("version") {
            None | Some(Value::Null) => return Err("network: missing `version` (1 or 2)".into()),
            Some(g) => g,
        };
        let version = match given {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        match version {
            Some(1) => {}
            Some(2) => {
                return Ok(Network {
                    raw,
                    body: Body::V2,
                })
            }
            _ => {
                let shown = match given {
                    Value::String(s) => format!("'{s}'"),
                    other => crate::issue::show(other),
                };
                return Err(format!(
                    "network.version: {shown} is not a network config version (1 or 2)"
                ));
            }
        }
        let list = match config {
            Some(Value::Sequence(s)) => s,
            Some(_) => return Err("network.config: expected a list of entries".into()),
            None => return Err("network: version 1 needs a `config` list".into()),
        };
        let mut entries = Vec::with_capacity(list.len());
        for (i, item) in list.iter().enumerate() {
            let entry: Entry = yaml_serde::from_value(item.clone()).map_err(|e| {
                let ty = item.get("type").and_then(Value::as_str).unwrap_or("?");
                format!("network.config[{i}] (type {ty}): {e}")
            })?;
            entries.push(entry);
        }
        let net = Network {
            raw,
            body: Body::V1(entries),
        };
        net.validate()?;
        Ok(net)
    }

    /// The v1 entries, if this is v1.
    pub fn v1(&self) -> Option<&[Entry]> {
        match &self.body {
            Body::V1(e) => Some(e),
            _ => None,
        }
    }

    /// The keys cloud-init requires per type, and addresses that must parse.
    fn validate(&self) -> Result<(), String> {
        let Some(entries) = self.v1() else {
            return Ok(());
        };
        for (i, e) in entries.iter().enumerate() {
            let at = |msg: String| format!("network.config[{i}] ({}): {msg}", e.type_name());
            if let Some(ifc) = e.interface() {
                if ifc.name.is_empty() {
                    return Err(at("missing `name`".into()));
                }
                match e {
                    Entry::Vlan(v) if v.vlan_link.is_none() => {
                        return Err(at(format!("{}: missing `vlan_link`", v.name)))
                    }
                    Entry::Vlan(v) if v.vlan_id.is_none() => {
                        return Err(at(format!("{}: missing `vlan_id`", v.name)))
                    }
                    Entry::Bond(b) if b.bond_interfaces.is_empty() => {
                        return Err(at(format!("{}: missing `bond_interfaces`", b.name)))
                    }
                    Entry::Bridge(b) if b.bridge_interfaces.is_empty() => {
                        return Err(at(format!("{}: missing `bridge_interfaces`", b.name)))
                    }
                    _ => {}
                }
                for (j, s) in ifc.subnets.iter().enumerate() {
                    let sat = |m: String| at(format!("{} subnets[{j}]: {m}", ifc.name));
                    if s.kind.is_static() && s.address.is_none() {
                        return Err(sat("static subnet without `address`".into()));
                    }
                    s.cidr().map_err(sat)?;
                    for r in &s.routes {
                        r.cidr().map_err(sat)?;
                    }
                }
            }
            if let Entry::Route(r) = e {
                r.cidr().map_err(at)?;
            }
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for Network {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Network::from_value(&v).map_err(serde::de::Error::custom)
    }
}

/// Serialises as given (the raw value).
impl serde::Serialize for Network {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(s)
    }
}

// ---- lenient scalar readers (cloud-init accepts numbers as strings and vice versa) ----

fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::Bool(b)) => Some(b.to_string()),
        Some(_) => return Err(serde::de::Error::custom("expected a string")),
    })
}

fn opt_lower<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(opt_string(d)?.map(|s| s.to_ascii_lowercase()))
}

fn opt_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(
            n.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    serde::de::Error::custom(format!("{n} is not a valid number here"))
                })?,
        ),
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(
            s.trim()
                .parse()
                .map_err(|_| serde::de::Error::custom(format!("{s:?} is not a number")))?,
        ),
        Some(_) => return Err(serde::de::Error::custom("expected a number")),
    })
}

/// cloud-init's lenient booleans: yes/no, true/false, on/off, 1/0.
fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            value_bool(&v)
                .ok_or_else(|| serde::de::Error::custom(format!("{v:?} is not a boolean")))?,
        ),
    })
}

/// Read a boolean the way cloud-init does.
pub fn value_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().map(|n| n != 0),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "yes" | "true" | "on" | "1" => Some(true),
            "no" | "false" | "off" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A list, or a string of space-separated words.
fn words<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => vec![],
        Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
        Some(Value::Sequence(seq)) => seq
            .into_iter()
            .filter_map(|v| match v {
                Value::String(s) => Some(s),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect(),
        Some(_) => return Err(serde::de::Error::custom("expected a list or a string")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(y: &str) -> Result<Network, String> {
        Network::from_value(&yaml_serde::from_str(y).unwrap())
    }

    #[test]
    fn parses_maas_v1() {
        let n = net(r#"
version: 1
config:
- {id: eth0, type: physical, name: eth0, mac_address: "AA:BB:CC:DD:EE:FF", mtu: 1500,
   accept-ra: "yes",
   subnets: [{type: static, address: 10.0.0.5/24, gateway: 10.0.0.1,
              dns_nameservers: [10.0.0.2], dns_search: "maas example.com",
              routes: [{destination: 10.1.0.0/16, gateway: 10.0.0.254, metric: 0}]},
             {type: dhcp}]}
- {type: bond, name: bond0, bond_interfaces: [eth1, eth2], params: {bond-mode: 802.3ad}}
- {type: vlan, name: bond0.10, vlan_link: bond0, vlan_id: "10"}
- {type: nameserver, address: [10.0.0.2], search: [maas]}
"#)
        .unwrap();
        let e = net_entries(&n);
        let Entry::Physical(p) = &e[0] else { panic!() };
        assert_eq!(p.mac_address.as_deref(), Some("aa:bb:cc:dd:ee:ff"));
        assert_eq!(p.accept_ra, Some(true));
        assert_eq!(p.subnets[0].dns_search, vec!["maas", "example.com"]);
        assert_eq!(
            p.subnets[0].cidr().unwrap().unwrap().to_string(),
            "10.0.0.5/24"
        );
        assert_eq!(p.subnets[1].kind, SubnetType::Dhcp4);
        let Entry::Vlan(v) = &e[2] else { panic!() };
        assert_eq!(v.vlan_id, Some(10));
    }

    fn net_entries(n: &Network) -> &[Entry] {
        n.v1().unwrap()
    }

    #[test]
    fn netmask_and_defaults() {
        assert_eq!(
            parse_cidr("192.168.1.10", Some("255.255.0.0"), None)
                .unwrap()
                .prefix,
            16
        );
        assert_eq!(
            parse_cidr("192.168.1.10/255.255.255.128", None, None)
                .unwrap()
                .prefix,
            25
        );
        assert_eq!(parse_cidr("192.168.1.10", None, None).unwrap().prefix, 24);
        assert_eq!(parse_cidr("2001:db8::1", None, None).unwrap().prefix, 64);
        assert!(parse_cidr("10.0.0.1", Some("255.0.255.0"), None).is_err());
        assert!(parse_cidr("10.0.0.300/24", None, None).is_err());
        let c = parse_cidr("10.1.2.3/16", None, None).unwrap();
        assert_eq!(c.network().to_string(), "10.1.0.0/16");
        assert!(c.contains("10.1.200.1".parse().unwrap()));
    }

    #[test]
    fn v2_and_disabled_pass_through() {
        assert_eq!(net("{version: 2, ethernets: {}}").unwrap().body, Body::V2);
        assert_eq!(net("{config: disabled}").unwrap().body, Body::Disabled);
        assert_eq!(net("{network: {version: 2}}").unwrap().body, Body::V2);
    }

    #[test]
    fn errors_name_the_entry() {
        let e = net("{version: 1, config: [{type: vlan, name: v, vlan_id: 3}]}").unwrap_err();
        assert!(e.contains("config[0]") && e.contains("vlan_link"), "{e}");
        let e = net("{version: 1, config: [{type: tunnel, name: t}]}").unwrap_err();
        assert!(e.contains("config[0]") && e.contains("tunnel"), "{e}");
        let e = net("{version: 1, config: [{type: physical, name: e, subnets: [{type: static}]}]}")
            .unwrap_err();
        assert!(e.contains("address"), "{e}");
        assert!(net("{version: 3}")
            .unwrap_err()
            .contains("network.version: 3 is not a network config version (1 or 2)"));
        assert!(net("{version: x}").unwrap_err().contains("'x' is not"));
    }
}
