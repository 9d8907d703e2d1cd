//! v1 -> netplan (`etc/netplan/50-cloud-init.yaml`), following cloud-init's netplan renderer
//! (netrender.md §4-5); the deliberate differences are in docs/compatibility.md.

use std::collections::BTreeMap;
use std::net::IpAddr;

use anyhow::{anyhow, Result};
use preseed::network::{value_bool, SubnetType};
use yaml_serde::{Mapping, Value};

use super::state::{Iface, Kind, State};

/// Where the rendered file goes in the target.
pub const PATH: &str = "etc/netplan/50-cloud-init.yaml";

pub const HEADER: &str =
    "# Written by deployer from the deployment's network config (version 1).\n\
# To keep cloud-init from rewriting it, deployer also wrote\n\
# /etc/cloud/cloud.cfg.d/curtin-disable-cloudinit-networking.cfg (network: {config: disabled}).\n";

type Obj = BTreeMap<String, Value>;

fn s(v: impl Into<String>) -> Value {
    Value::String(v.into())
}

fn to_value(o: Obj) -> Value {
    Value::Mapping(o.into_iter().map(|(k, v)| (s(k), v)).collect())
}

/// cloud-init's bond parameter table (v1 `bond-*` -> netplan).
fn bond_key(k: &str) -> Option<&'static str> {
    Some(match k {
        "bond-ad-select" => "ad-select",
        "bond-all-slaves-active" => "all-slaves-active",
        "bond-arp-all-targets" => "arp-all-targets",
        "bond-arp-interval" => "arp-interval",
        "bond-arp-ip-target" => "arp-ip-targets",
        "bond-arp-validate" => "arp-validate",
        "bond-downdelay" => "down-delay",
        "bond-fail-over-mac" => "fail-over-mac-policy",
        "bond-lacp-rate" => "lacp-rate",
        "bond-learn-packet-interval" => "learn-packet-interval",
        "bond-miimon" => "mii-monitor-interval",
        "bond-min-links" => "min-links",
        "bond-mode" => "mode",
        "bond-num-grat-arp" => "gratuitous-arp",
        "bond-packets-per-slave" => "packets-per-slave",
        "bond-primary" => "primary",
        "bond-primary-reselect" => "primary-reselect-policy",
        "bond-updelay" => "up-delay",
        "bond-xmit-hash-policy" => "transmit-hash-policy",
        _ => return None,
    })
}

/// cloud-init's bridge parameter table (v1 `bridge_*` -> netplan).
fn bridge_key(k: &str) -> Option<&'static str> {
    Some(match k {
        "bridge_ageing" => "ageing-time",
        "bridge_bridgeprio" => "priority",
        "bridge_fd" => "forward-delay",
        "bridge_hello" => "hello-time",
        "bridge_maxage" => "max-age",
        "bridge_pathcost" => "path-cost",
        "bridge_portprio" => "port-priority",
        "bridge_stp" => "stp",
        _ => return None,
    })
}

/// Render the whole file (header + YAML).
pub fn render(st: &State) -> Result<String> {
    let doc = render_value(st)?;
    let body = preseed::yaml::to_string(&doc).map_err(|e| anyhow!("writing netplan YAML: {e}"))?;
    Ok(format!("{HEADER}{body}"))
}

/// The `{network: {version: 2, ...}}` document.
pub fn render_value(st: &State) -> Result<Value> {
    let mut ethernets = Obj::new();
    let mut bonds = Obj::new();
    let mut bridges = Obj::new();
    let mut vlans = Obj::new();
    for i in &st.ifaces {
        let mut o = Obj::new();
        let key = match i.kind {
            Kind::Physical => {
                if let Some(mac) = &i.mac {
                    o.insert(
                        "match".into(),
                        to_value(Obj::from([("macaddress".into(), s(mac))])),
                    );
                    o.insert("set-name".into(), s(&i.name));
                }
                &mut ethernets
            }
            Kind::Bond => {
                let mut slaves: Vec<&str> = st
                    .ifaces
                    .iter()
                    .filter(|x| x.bond_master.as_deref() == Some(&i.name))
                    .map(|x| x.name.as_str())
                    .collect();
                slaves.sort();
                o.insert(
                    "interfaces".into(),
                    Value::Sequence(slaves.into_iter().map(s).collect()),
                );
                let params = bond_params(i);
                if !params.is_empty() {
                    o.insert("parameters".into(), to_value(params));
                }
                if let Some(mac) = &i.mac {
                    o.insert("macaddress".into(), s(mac));
                }
                &mut bonds
            }
            Kind::Bridge => {
                if i.bridge_ports.is_empty() {
                    tracing::warn!("bridge {} has no ports: skipped", i.name);
                    continue;
                }
                let mut ports = i.bridge_ports.clone();
                ports.sort();
                o.insert(
                    "interfaces".into(),
                    Value::Sequence(ports.into_iter().map(s).collect()),
                );
                let params = bridge_params(i)?;
                if !params.is_empty() {
                    o.insert("parameters".into(), to_value(params));
                }
                if let Some(mac) = &i.mac {
                    o.insert("macaddress".into(), s(mac));
                }
                &mut bridges
            }
            Kind::Vlan => {
                o.insert("id".into(), Value::from(i.vlan_id.unwrap_or_default()));
                o.insert("link".into(), s(i.vlan_link.clone().unwrap_or_default()));
                if let Some(mac) = &i.mac {
                    o.insert("macaddress".into(), s(mac));
                }
                &mut vlans
            }
            // cloud-init's netplan renderer writes nothing for these.
            Kind::Loopback | Kind::Infiniband => continue,
        };
        addresses(i, &mut o)?;
        key.insert(i.name.clone(), to_value(o));
    }
    // Global DNS goes to every device with static addresses and no DNS of its own.
    if !st.dns_nameservers.is_empty() || !st.dns_search.is_empty() {
        for section in [&mut ethernets, &mut bonds, &mut bridges, &mut vlans] {
            for dev in section.values_mut() {
                let Value::Mapping(m) = dev else { continue };
                if m.contains_key("addresses") && !m.contains_key("nameservers") {
                    let mut ns = Obj::new();
                    if !st.dns_nameservers.is_empty() {
                        ns.insert("addresses".into(), list(&st.dns_nameservers));
                    }
                    if !st.dns_search.is_empty() {
                        ns.insert("search".into(), list(&st.dns_search));
                    }
                    m.insert(s("nameservers"), to_value(ns));
                    sort_mapping(m);
                }
            }
        }
    }
    let mut net = Mapping::new();
    net.insert(s("version"), Value::from(2));
    for (name, section) in [
        ("ethernets", ethernets),
        ("bonds", bonds),
        ("bridges", bridges),
        ("vlans", vlans),
    ] {
        if !section.is_empty() {
            net.insert(s(name), to_value(section));
        }
    }
    let mut doc = Mapping::new();
    doc.insert(s("network"), Value::Mapping(net));
    Ok(Value::Mapping(doc))
}

fn sort_mapping(m: &mut Mapping) {
    let mut entries: Vec<(Value, Value)> = std::mem::take(m).into_iter().collect();
    entries.sort_by(|a, b| a.0.as_str().cmp(&b.0.as_str()));
    m.extend(entries);
}

fn list(v: &[String]) -> Value {
    Value::Sequence(v.iter().map(s).collect())
}

fn bond_params(i: &Iface) -> Obj {
    let mut out = Obj::new();
    for (k, v) in &i.params {
        let k = k.replace('_', "-");
        let Some(nk) = bond_key(&k) else { continue };
        let v = if nk == "arp-ip-targets" {
            // netplan wants a list; v1 gives a space- or comma-separated string.
            match v {
                Value::Sequence(_) => v.clone(),
                other => Value::Sequence(
                    super::state::scalar_text(other)
                        .split(|c: char| c.is_whitespace() || c == ',')
                        .filter(|x| !x.is_empty())
                        .map(s)
                        .collect(),
                ),
            }
        } else {
            v.clone()
        };
        out.insert(nk.to_string(), v);
    }
    out
}

fn bridge_params(i: &Iface) -> Result<Obj> {
    let mut out = Obj::new();
    for (k, v) in &i.params {
        let k = k.replace('-', "_");
        let Some(nk) = bridge_key(&k) else { continue };
        let v =
            match nk {
                "stp" => Value::Bool(value_bool(v).ok_or_else(|| {
                    anyhow!("bridge {}: bridge_stp {v:?} is not on/off/0/1", i.name)
                })?),
                "path-cost" | "port-priority" => {
                    // A list of "<port> <value>" strings -> {port: value}.
                    let items: Vec<String> = match v {
                        Value::Sequence(seq) => seq.iter().map(super::state::scalar_text).collect(),
                        other => vec![super::state::scalar_text(other)],
                    };
                    let mut m = Obj::new();
                    for it in items {
                        let mut w = it.split_whitespace();
                        if let (Some(port), Some(val)) = (w.next(), w.next()) {
                            let val = val
                                .parse::<i64>()
                                .map(Value::from)
                                .unwrap_or_else(|_| s(val));
                            m.insert(port.to_string(), val);
                        }
                    }
                    to_value(m)
                }
                _ => v.clone(),
            };
        out.insert(nk.to_string(), v);
    }
    Ok(out)
}

/// cloud-init's `_extract_addresses`: addresses, DHCP flags, routes, DNS, MTU, accept-ra.
fn addresses(i: &Iface, o: &mut Obj) -> Result<()> {
    let mut addrs = vec![];
    let mut routes = vec![];
    let mut ns = vec![];
    let mut search = vec![];
    let mut mtu: Option<u32> = None;
    for sn in &i.subnets {
        match sn.kind {
            SubnetType::Dhcp4 => {
                o.insert("dhcp4".into(), Value::Bool(true));
                if let Some(m) = sn.metric {
                    o.insert("dhcp4-overrides".into(), route_metric(m));
                }
            }
            SubnetType::Dhcp6
            | SubnetType::Ipv6Slaac
            | SubnetType::Dhcpv6Stateless
            | SubnetType::Dhcpv6Stateful => {
                o.insert("dhcp6".into(), Value::Bool(true));
                if let Some(m) = sn.metric {
                    o.insert("dhcp6-overrides".into(), route_metric(m));
                }
            }
            SubnetType::Static | SubnetType::Static6 => {
                let cidr = sn
                    .cidr()
                    .map_err(|e| anyhow!("{}: {e}", i.name))?
                    .ok_or_else(|| anyhow!("{}: static subnet without address", i.name))?;
                addrs.push(s(cidr.to_string()));
                if let Some(gw) = &sn.gateway {
                    let mut r = Obj::new();
                    r.insert("to".into(), s("default"));
                    r.insert("via".into(), s(gw));
                    let gw_ip: Option<IpAddr> = gw.parse().ok();
                    if gw_ip.is_some_and(|g| g.is_ipv6() == cidr.is_v6() && !cidr.contains(g)) {
                        r.insert("on-link".into(), Value::Bool(true));
                    }
                    if let Some(m) = sn.metric {
                        r.insert("metric".into(), Value::from(m));
                    }
                    routes.push(to_value(r));
                }
                ns.extend(sn.dns_nameservers.iter().cloned());
                search.extend(sn.dns_search.iter().cloned());
                if let Some(m) = sn.mtu {
                    if cidr.is_v6() {
                        o.insert("ipv6-mtu".into(), Value::from(m));
                    } else {
                        mtu = Some(m);
                    }
                }
                for rt in &sn.routes {
                    let dest = rt.cidr().map_err(|e| anyhow!("{}: {e}", i.name))?;
                    let mut r = Obj::new();
                    r.insert("to".into(), s(dest.to_string()));
                    if let Some(gw) = &rt.gateway {
                        r.insert("via".into(), s(gw));
                    }
                    if let Some(m) = rt.metric.or(sn.metric) {
                        r.insert("metric".into(), Value::from(m));
                    }
                    routes.push(to_value(r));
                }
            }
            SubnetType::Manual => {}
        }
    }
    if !addrs.is_empty() {
        o.insert("addresses".into(), Value::Sequence(addrs));
    }
    if !routes.is_empty() {
        o.insert("routes".into(), Value::Sequence(routes));
    }
    if !ns.is_empty() || !search.is_empty() {
        let mut n = Obj::new();
        if !ns.is_empty() {
            n.insert("addresses".into(), list(&ns));
        }
        if !search.is_empty() {
            n.insert("search".into(), list(&search));
        }
        o.insert("nameservers".into(), to_value(n));
    }
    match (mtu, i.mtu) {
        (Some(sub), Some(dev)) if sub != dev => {
            tracing::warn!("{}: subnet mtu {sub} overrides interface mtu {dev}", i.name);
            o.insert("mtu".into(), Value::from(sub));
        }
        (Some(m), _) | (None, Some(m)) => {
            o.insert("mtu".into(), Value::from(m));
        }
        (None, None) => {}
    }
    if let Some(ra) = i.accept_ra {
        o.insert("accept-ra".into(), Value::Bool(ra));
    }
    Ok(())
}

fn route_metric(m: u32) -> Value {
    to_value(Obj::from([("route-metric".into(), Value::from(m))]))
}
