//! cloud-init's network state built from v1 entries: one record per interface (bond slaves
//! know their master, undefined members get placeholders), global DNS and routes. Both
//! renderers read this.

use std::collections::BTreeMap;

use preseed::network::{Entry, Interface, Route, Subnet};
use yaml_serde::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Physical,
    Infiniband,
    Bond,
    Bridge,
    Vlan,
    Loopback,
}

#[derive(Debug, Clone)]
pub struct Iface {
    pub kind: Kind,
    pub name: String,
    pub mac: Option<String>,
    pub mtu: Option<u32>,
    pub subnets: Vec<Subnet>,
    pub accept_ra: Option<bool>,
    pub wakeonlan: Option<bool>,
    /// Every `params` key, plus for slaves a copy of their bond's params.
    pub params: BTreeMap<String, Value>,
    pub bond_master: Option<String>,
    pub bond_slaves: Vec<String>,
    pub bridge_ports: Vec<String>,
    pub vlan_link: Option<String>,
    pub vlan_id: Option<u32>,
}

#[derive(Debug, Clone, Default)]
pub struct State {
    /// In definition order.
    pub ifaces: Vec<Iface>,
    pub dns_nameservers: Vec<String>,
    pub dns_search: Vec<String>,
    pub routes: Vec<Route>,
}

impl State {
    pub fn get(&self, name: &str) -> Option<&Iface> {
        self.ifaces.iter().find(|i| i.name == name)
    }

    fn get_mut_or_placeholder(&mut self, name: &str) -> &mut Iface {
        if let Some(i) = self.ifaces.iter().position(|i| i.name == name) {
            return &mut self.ifaces[i];
        }
        self.ifaces.push(Iface::new(Kind::Physical, name));
        self.ifaces.last_mut().expect("just pushed")
    }

    pub fn from_entries(entries: &[Entry]) -> State {
        let mut st = State::default();
        for e in entries {
            match e {
                Entry::Physical(i) => st.upsert(Kind::Physical, i),
                Entry::Infiniband(i) => st.upsert(Kind::Infiniband, i),
                Entry::Loopback(i) => st.upsert(Kind::Loopback, i),
                Entry::Vlan(i) => {
                    st.upsert(Kind::Vlan, i);
                    let r = st.get_mut_or_placeholder(&i.name);
                    r.vlan_link = i.vlan_link.clone();
                    r.vlan_id = i.vlan_id;
                }
                Entry::Bond(i) => {
                    st.upsert(Kind::Bond, i);
                    st.get_mut_or_placeholder(&i.name).bond_slaves = i.bond_interfaces.clone();
                    for s in &i.bond_interfaces {
                        let slave = st.get_mut_or_placeholder(s);
                        slave.bond_master = Some(i.name.clone());
                        for (k, v) in &i.params {
                            slave.params.insert(k.clone(), v.clone());
                        }
                    }
                }
                Entry::Bridge(i) => {
                    st.upsert(Kind::Bridge, i);
                    st.get_mut_or_placeholder(&i.name).bridge_ports = i.bridge_interfaces.clone();
                    for p in &i.bridge_interfaces {
                        st.get_mut_or_placeholder(p);
                    }
                }
                Entry::Nameserver(n) => {
                    // Interface-scoped nameservers are ignored by cloud-init's netplan and ENI
                    // renderers too (docs/compatibility.md).
                    if n.interface.is_none() {
                        st.dns_nameservers.extend(n.address.iter().cloned());
                        st.dns_search.extend(n.search.iter().cloned());
                    }
                }
                Entry::Route(r) => st.routes.push(r.clone()),
            }
        }
        st
    }

    fn upsert(&mut self, kind: Kind, i: &Interface) {
        let r = self.get_mut_or_placeholder(&i.name);
        r.kind = kind;
        r.mac = i.mac_address.clone();
        r.mtu = i.mtu.filter(|m| *m != 0);
        r.subnets = i.subnets.clone();
        r.accept_ra = i.accept_ra;
        r.wakeonlan = i.wakeonlan;
        for (k, v) in &i.params {
            r.params.insert(k.clone(), v.clone());
        }
        // MAAS copies non-bond, non-bridge params (accept-ra) to the top level; other
        // top-level bond-*/bridge_* keys are honoured as params too.
        for (k, v) in &i.extra {
            if k.starts_with("bond") || k.starts_with("bridge") {
                r.params.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
}

impl Iface {
    fn new(kind: Kind, name: &str) -> Iface {
        Iface {
            kind,
            name: name.to_string(),
            mac: None,
            mtu: None,
            subnets: vec![],
            accept_ra: None,
            wakeonlan: None,
            params: BTreeMap::new(),
            bond_master: None,
            bond_slaves: vec![],
            bridge_ports: vec![],
            vlan_link: None,
            vlan_id: None,
        }
    }
}

/// A YAML scalar as text (for ENI lines).
pub fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Sequence(s) => s.iter().map(scalar_text).collect::<Vec<_>>().join(" "),
        Value::Null => String::new(),
        other => preseed::yaml::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}
