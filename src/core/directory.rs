//! The directory: the people in each role and the agencies, as data.
//!
//! Owns who a role is for a case (an area's own list first, else the partnership's), finding an
//! agency by id or by a sender's address or mail domain, and whether an address belongs to the
//! business unit. The shell's configuration builds a [`Directory`]; the core only reads it.
//! [`Lookup`] is the part planning needs, so a test can generate people instead of listing them.
//!
//! Must not: read files or know the configuration's format (that is `shell::config`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One person in a role.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    pub name: String,
    pub email: String,
    #[serde(default)]
    pub phone: Option<String>,
    /// For statutory partner representatives: `la`, `police` or `icb`.
    #[serde(default)]
    pub partner: Option<String>,
}

/// An agency in the directory.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Agency {
    /// Short id used in commands and replies (`police`, `health-visiting`).
    pub id: String,
    pub name: String,
    /// Other names people write for it ("GMP", "health visitors").
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Where information requests go.
    pub contact: Contact,
    /// The agency's named safeguarding lead, copied on chasers.
    #[serde(default)]
    pub lead: Option<Contact>,
    /// Who gets the chaser when the contact is away (an out-of-office was seen).
    #[serde(default)]
    pub deputy: Option<Contact>,
    /// Mail domains whose senders speak for this agency.
    #[serde(default)]
    pub domains: Vec<String>,
}

impl Agency {
    /// The addresses that speak for this agency by name (contact, lead, deputy), lowercase.
    pub fn addresses(&self) -> Vec<String> {
        [
            Some(&self.contact),
            self.lead.as_ref(),
            self.deputy.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(|c| c.email.to_lowercase())
        .collect()
    }
}

/// The roles with the business unit in them: they may add agencies to a case by reply.
pub const BUSINESS_UNIT_ROLES: [&str; 2] = ["business_unit", "business_manager"];

/// Everyone caseclerk writes to, by role, and the agency directory.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    pub roles: BTreeMap<String, Vec<Contact>>,
    /// An area's (a borough's) own people for some roles (BHR).
    pub area_roles: BTreeMap<String, BTreeMap<String, Vec<Contact>>>,
    pub agencies: Vec<Agency>,
}

impl Directory {
    /// The people in a role for a case in `area` (the area's own list first, else the partnership's).
    pub fn people(&self, role: &str, area: Option<&str>) -> &[Contact] {
        if let Some(a) = area
            && let Some(list) = self.area_roles.get(a).and_then(|r| r.get(role))
        {
            return list;
        }
        self.roles.get(role).map(Vec::as_slice).unwrap_or(&[])
    }

    /// An agency by its id.
    pub fn agency(&self, id: &str) -> Option<&Agency> {
        self.agencies.iter().find(|a| a.id == id)
    }

    /// The agency a sender speaks for: by their own address first, else by their mail domain.
    pub fn agency_of(&self, email: &str) -> Option<&Agency> {
        let email = email.to_lowercase();
        let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
        self.agencies
            .iter()
            .find(|a| a.addresses().contains(&email))
            .or_else(|| {
                self.agencies
                    .iter()
                    .find(|a| a.domains.iter().any(|d| d.eq_ignore_ascii_case(domain)))
            })
    }

    /// Someone we know by address, in any role (partnership-wide or an area's).
    pub fn person(&self, email: &str) -> Option<&Contact> {
        self.roles
            .values()
            .chain(self.area_roles.values().flat_map(|r| r.values()))
            .flatten()
            .find(|c| c.email.eq_ignore_ascii_case(email))
    }

    /// Is this address someone in the business unit (roles `business_unit`, `business_manager`)?
    pub fn is_business_unit(&self, email: &str) -> bool {
        BUSINESS_UNIT_ROLES
            .iter()
            .flat_map(|r| self.people(r, None))
            .any(|c| c.email.eq_ignore_ascii_case(email))
    }
}

/// What planning needs from a directory: the configured [`Directory`], or a test's generator.
pub trait Lookup {
    /// People in a directory role for a case in `area`.
    fn people(&self, role: &str, area: Option<&str>) -> Vec<Contact>;
    /// An agency from the directory.
    fn agency(&self, id: &str) -> Option<Agency>;
}

impl Lookup for Directory {
    fn people(&self, role: &str, area: Option<&str>) -> Vec<Contact> {
        Directory::people(self, role, area).to_vec()
    }
    fn agency(&self, id: &str) -> Option<Agency> {
        Directory::agency(self, id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(email: &str) -> Contact {
        Contact {
            name: email.into(),
            email: email.into(),
            phone: None,
            partner: None,
        }
    }

    fn directory() -> Directory {
        let mut d = Directory::default();
        d.roles
            .insert("review_group".into(), vec![contact("group@all.test")]);
        d.area_roles.insert(
            "Havering".into(),
            [(
                "review_group".to_string(),
                vec![contact("group@havering.test")],
            )]
            .into(),
        );
        d.roles
            .insert("business_unit".into(), vec![contact("bu@all.test")]);
        d.agencies.push(Agency {
            id: "police".into(),
            name: "Police".into(),
            aliases: vec![],
            contact: contact("referrals@police.test"),
            lead: Some(contact("Lead@Police.test")),
            deputy: None,
            domains: vec!["police.test".into(), "met.test".into()],
        });
        d
    }

    #[test]
    fn an_areas_own_people_come_before_the_partnerships() {
        let d = directory();
        assert_eq!(
            d.people("review_group", Some("Havering"))[0].email,
            "group@havering.test"
        );
        assert_eq!(
            d.people("review_group", Some("Redbridge"))[0].email,
            "group@all.test"
        );
        assert_eq!(d.people("review_group", None)[0].email, "group@all.test");
        assert!(d.people("nobody", None).is_empty());
    }

    #[test]
    fn a_sender_speaks_for_an_agency_by_address_or_by_domain() {
        let d = directory();
        assert_eq!(
            d.agency_of("lead@police.test").map(|a| a.id.as_str()),
            Some("police")
        );
        assert_eq!(
            d.agency_of("someone@MET.test").map(|a| a.id.as_str()),
            Some("police")
        );
        assert_eq!(d.agency_of("someone@elsewhere.test").map(|a| &a.id), None);
    }

    #[test]
    fn the_business_unit_is_known_by_address_in_any_case() {
        let d = directory();
        assert!(d.is_business_unit("BU@all.test"));
        assert!(!d.is_business_unit("group@all.test"));
        assert!(d.person("GROUP@havering.test").is_some());
    }
}
