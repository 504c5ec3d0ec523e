//! Users and groups from /etc/passwd and /etc/group: whether nginx's user may open a
//! socket with a given owner, group and mode. Read as text (not getpwnam) so a test
//! can hand in its own files and the answer is the same one the files give.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accounts {
    /// user → primary group name
    primary_group: BTreeMap<String, String>,
    /// group → members listed in /etc/group
    members: BTreeMap<String, Vec<String>>,
    gid_names: BTreeMap<String, String>,
}

impl Accounts {
    pub fn parse(passwd: &str, group: &str) -> Accounts {
        let mut accounts = Accounts::default();
        for line in group.lines().filter(|l| !l.starts_with('#')) {
            let fields: Vec<&str> = line.split(':').collect();
            if let [name, _, gid, members, ..] = fields.as_slice() {
                accounts.gid_names.insert(gid.to_string(), name.to_string());
                accounts.members.insert(
                    name.to_string(),
                    members
                        .split(',')
                        .filter(|m| !m.is_empty())
                        .map(String::from)
                        .collect(),
                );
            }
        }
        for line in passwd.lines().filter(|l| !l.starts_with('#')) {
            let fields: Vec<&str> = line.split(':').collect();
            if let [name, _, _, gid, ..] = fields.as_slice() {
                let group = accounts
                    .gid_names
                    .get(*gid)
                    .cloned()
                    .unwrap_or_else(|| gid.to_string());
                accounts.primary_group.insert(name.to_string(), group);
            }
        }
        accounts
    }

    pub fn knows_user(&self, user: &str) -> bool {
        self.primary_group.contains_key(user)
    }

    pub fn primary_group(&self, user: &str) -> Option<&str> {
        self.primary_group.get(user).map(String::as_str)
    }

    pub fn in_group(&self, user: &str, group: &str) -> bool {
        self.primary_group(user) == Some(group)
            || self
                .members
                .get(group)
                .is_some_and(|m| m.iter().any(|u| u == user))
    }

    /// Connecting to a Unix socket needs write permission on it. As the kernel checks
    /// it: the owner's bits for the owner, else the group's bits for a member (of the
    /// worker's group or, after nginx's initgroups(), of a group listing the user), else
    /// the others' bits.
    pub fn may_connect(
        &self,
        user: &str,
        user_group: &str,
        owner: &str,
        group: &str,
        mode: u32,
    ) -> bool {
        if user == "root" {
            return true;
        }
        if user == owner {
            return mode & 0o200 != 0;
        }
        if user_group == group || self.in_group(user, group) {
            return mode & 0o020 != 0;
        }
        mode & 0o002 != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\nnginx:x:101:102::/:/usr/sbin/nologin\n";
    const GROUP: &str = "root:x:0:\nwww-data:x:33:nginx\nnginx:x:102:\n";

    #[test]
    fn nginx_may_connect_through_owner_group_or_other_bits() {
        let a = Accounts::parse(PASSWD, GROUP);
        assert!(a.may_connect("www-data", "www-data", "www-data", "www-data", 0o660));
        assert!(!a.may_connect("www-data", "www-data", "root", "root", 0o600));
        assert!(!a.may_connect("www-data", "www-data", "root", "root", 0o660));
        assert!(
            a.may_connect("nginx", "nginx", "root", "www-data", 0o660),
            "nginx is listed in www-data"
        );
        assert!(a.may_connect("nginx", "nginx", "root", "root", 0o666));
        assert!(
            !a.may_connect("www-data", "www-data", "www-data", "root", 0o066),
            "the owner gets the owner's bits only"
        );
        assert!(
            a.may_connect("nobody", "web", "root", "web", 0o660),
            "`user nobody web;` runs in group web"
        );
        assert_eq!(a.primary_group("www-data"), Some("www-data"));
    }
}
