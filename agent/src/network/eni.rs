//! v1 -> ENI (`etc/network/interfaces`) and the udev naming rules, following cloud-init's ENI
//! renderer with `ip` route commands (netrender.md §6), not curtin's older fallback renderer.

use std::net::IpAddr;

use anyhow::{anyhow, Result};
use preseed::network::{value_bool, Route, Subnet, SubnetType};

use super::state::{scalar_text, Iface, Kind, State};

pub const PATH: &str = "etc/network/interfaces";
pub const UDEV_RULES: &str = "etc/udev/rules.d/70-persistent-net.rules";

pub const HEADER: &str =
    "# Written by deployer from the deployment's network config (version 1).\n";

fn rank(k: Kind) -> u8 {
    match k {
        Kind::Physical => 0,
        Kind::Infiniband => 1,
        Kind::Bond => 2,
        Kind::Bridge => 3,
        Kind::Vlan => 4,
        Kind::Loopback => 5,
    }
}

/// Render `etc/network/interfaces`.
pub fn render(st: &State) -> Result<String> {
    let mut stanzas: Vec<Vec<String>> = vec![];
    let mut lo = vec!["auto lo".to_string(), "iface lo inet loopback".to_string()];
    if !st.dns_nameservers.is_empty() {
        lo.push(format!(
            "    dns-nameservers {}",
            st.dns_nameservers.join(" ")
        ));
    }
    if !st.dns_search.is_empty() {
        lo.push(format!("    dns-search {}", st.dns_search.join(" ")));
    }
    // Global routes ride on the loopback stanza: ifupdown rejects options outside a stanza,
    // where cloud-init writes them (docs/compatibility.md).
    for r in &st.routes {
        lo.extend(
            route_lines(r, None)?
                .into_iter()
                .map(|l| format!("    {l}")),
        );
    }
    stanzas.push(lo);
    let mut ifaces: Vec<&Iface> = st
        .ifaces
        .iter()
        .filter(|i| i.kind != Kind::Loopback)
        .collect();
    ifaces.sort_by(|a, b| (rank(a.kind), &a.name).cmp(&(rank(b.kind), &b.name)));
    for i in ifaces {
        stanzas.extend(render_iface(i)?);
    }
    let mut out = String::from(HEADER);
    out.push_str(
        &stanzas
            .iter()
            .map(|s| s.join("\n"))
            .collect::<Vec<_>>()
            .join("\n\n"),
    );
    out.push('\n');
    Ok(out)
}

/// The attribute lines of an interface (first stanza only), sorted.
fn attributes(i: &Iface, ipv4_subnet_mtu: bool) -> Vec<String> {
    let mut a: Vec<String> = vec![];
    for (k, v) in &i.params {
        let k = k.replace('_', "-");
        if k == "bridge-stp" {
            let on = value_bool(v).unwrap_or(false);
            a.push(format!("bridge-stp {}", if on { "on" } else { "off" }));
        } else if matches!(
            k.as_str(),
            "bridge-pathcost" | "bridge-portprio" | "bridge-waitport"
        ) {
            match v {
                yaml_serde::Value::Sequence(seq) => {
                    a.extend(seq.iter().map(|x| format!("{k} {}", scalar_text(x))))
                }
                other => a.push(format!("{k} {}", scalar_text(other))),
            }
        } else if k.starts_with("bond-") || k.starts_with("bridge-") {
            // A slave carries a copy of its bond's params, as cloud-init's state does.
            a.push(format!("{k} {}", scalar_text(v)));
        }
    }
    if let Some(m) = &i.bond_master {
        a.push(format!("bond-master {m}"));
    }
    if i.kind == Kind::Bond {
        a.push("bond-slaves none".into());
    }
    if i.kind == Kind::Bridge {
        a.push(format!("bridge-ports {}", i.bridge_ports.join(" ")));
    }
    if i.kind == Kind::Vlan {
        if let Some(l) = &i.vlan_link {
            a.push(format!("vlan-raw-device {l}"));
        }
        if let Some(id) = i.vlan_id {
            a.push(format!("vlan-id {id}"));
        }
    }
    if matches!(
        i.kind,
        Kind::Bond | Kind::Bridge | Kind::Infiniband | Kind::Vlan
    ) {
        if let Some(mac) = &i.mac {
            a.push(format!("hwaddress {mac}"));
        }
    }
    if i.wakeonlan == Some(true) {
        a.push("ethernet-wol g".into());
    }
    if let (Some(m), false) = (i.mtu, ipv4_subnet_mtu) {
        a.push(format!("mtu {m}"));
    }
    a.sort();
    a
}

fn render_iface(i: &Iface) -> Result<Vec<Vec<String>>> {
    let ipv4_mtu = i
        .subnets
        .iter()
        .any(|s| s.mtu.is_some() && s.cidr().ok().flatten().is_some_and(|c| !c.is_v6()));
    let attrs = attributes(i, ipv4_mtu);
    let ind = |l: &String| format!("    {l}");
    if i.subnets.is_empty() {
        let mut st = vec![
            format!("auto {}", i.name),
            format!("iface {} inet manual", i.name),
        ];
        st.extend(attrs.iter().map(ind));
        return Ok(vec![st]);
    }
    // DNS of the first subnet that has any, for later subnets without their own.
    let first_dns = i
        .subnets
        .iter()
        .find(|s| !s.dns_nameservers.is_empty() || !s.dns_search.is_empty())
        .map(|s| (s.dns_nameservers.clone(), s.dns_search.clone()));
    let mut out = vec![];
    for (idx, sn) in i.subnets.iter().enumerate() {
        let mut st = vec![];
        let control = sn.control.as_deref().unwrap_or("auto");
        if idx == 0 {
            st.push(match control {
                "manual" => format!("# control-manual {}", i.name),
                "hotplug" => format!("allow-hotplug {}", i.name),
                _ => format!("auto {}", i.name),
            });
        } else {
            st.push(format!("# control-alias {}", i.name));
        }
        let cidr = sn.cidr().map_err(|e| anyhow!("{}: {e}", i.name))?;
        let v6 = matches!(
            sn.kind,
            SubnetType::Dhcp6
                | SubnetType::Static6
                | SubnetType::Ipv6Slaac
                | SubnetType::Dhcpv6Stateless
                | SubnetType::Dhcpv6Stateful
        ) || cidr.is_some_and(|c| c.is_v6());
        let fam = if v6 { "inet6" } else { "inet" };
        let (mode, extra): (&str, Option<&str>) = match sn.kind {
            SubnetType::Dhcp4 | SubnetType::Dhcp6 | SubnetType::Dhcpv6Stateful => ("dhcp", None),
            SubnetType::Dhcpv6Stateless => ("auto", Some("dhcp 1")),
            SubnetType::Ipv6Slaac => ("auto", Some("dhcp 0")),
            SubnetType::Static | SubnetType::Static6 => ("static", None),
            SubnetType::Manual => ("manual", None),
        };
        st.push(format!("iface {} {fam} {mode}", i.name));
        let mut opts: Vec<String> = vec![];
        if let Some(e) = extra {
            opts.push(e.into());
        }
        if let Some(ra) = i.accept_ra {
            if mode == "dhcp" || (v6 && mode == "static") {
                opts.push(format!("accept_ra {}", ra as u8));
            }
        }
        if let Some(c) = cidr {
            opts.push(format!("address {c}"));
        }
        if let Some(gw) = &sn.gateway {
            opts.push(format!("gateway {gw}"));
        }
        if let Some(m) = sn.metric {
            opts.push(format!("metric {m}"));
        }
        if let Some(m) = sn.mtu {
            opts.push(format!("mtu {m}"));
        }
        let (ns, search) = if sn.dns_nameservers.is_empty() && sn.dns_search.is_empty() {
            first_dns.clone().unwrap_or_default()
        } else {
            (sn.dns_nameservers.clone(), sn.dns_search.clone())
        };
        let same_family: Vec<&String> = ns
            .iter()
            .filter(|n| {
                n.parse::<IpAddr>()
                    .map(|a| a.is_ipv6() == v6)
                    .unwrap_or(false)
            })
            .collect();
        if !same_family.is_empty() {
            opts.push(format!(
                "dns-nameservers {}",
                same_family
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
            if !search.is_empty() {
                opts.push(format!("dns-search {}", search.join(" ")));
            }
        }
        opts.sort();
        st.extend(opts.iter().map(ind));
        if idx == 0 {
            st.extend(attrs.iter().map(ind));
        }
        for r in &sn.routes {
            st.extend(route_lines(r, Some(sn))?.iter().map(ind));
        }
        out.push(st);
    }
    Ok(out)
}

/// `post-up ip route add ... || true` and the matching `pre-down ... del`.
fn route_lines(r: &Route, subnet: Option<&Subnet>) -> Result<Vec<String>> {
    let dest = r.cidr().map_err(|e| anyhow!("route: {e}"))?;
    let to = if dest.prefix == 0 {
        "default".to_string()
    } else {
        dest.to_string()
    };
    let fam = if dest.is_v6() { " -family inet6" } else { "" };
    let mut spec = to;
    if let Some(gw) = &r.gateway {
        spec.push_str(&format!(" via {gw}"));
    }
    if let Some(m) = r.metric.or(subnet.and_then(|s| s.metric)) {
        spec.push_str(&format!(" metric {m}"));
    }
    Ok(vec![
        format!("post-up ip{fam} route add {spec} || true"),
        format!("pre-down ip{fam} route del {spec} || true"),
    ])
}

/// `70-persistent-net.rules`: one naming rule per physical interface with a MAC.
pub fn udev_rules(st: &State) -> String {
    let mut out = String::new();
    for i in &st.ifaces {
        if i.kind != Kind::Physical {
            continue;
        }
        let Some(mac) = &i.mac else { continue };
        let driver = i
            .params
            .get("driver")
            .map(scalar_text)
            .unwrap_or_else(|| "?*".into());
        out.push_str(&format!(
            "SUBSYSTEM==\"net\", ACTION==\"add\", DRIVERS==\"{driver}\", ATTR{{address}}==\"{mac}\", NAME=\"{}\"\n",
            i.name
        ));
    }
    out
}
