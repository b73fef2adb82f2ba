//! The inventory's closed sets of names (boot protocol, file system, bond mode): parsed once, where
//! the inventory is read, into enums the renderers match on; a wrong name is a diagnostic at its
//! position naming the set and the nearest name.

use serde::Serialize;

use super::Diags;
use cairn_common::named::Named;
use cairn_common::suggest::hint;
use cairn_yaml::Loc;

/// How the installer configures the primary interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bootproto {
    Dhcp,
    Static,
}

impl Named for Bootproto {
    const ALL: &'static [Bootproto] = &[Bootproto::Dhcp, Bootproto::Static];

    fn name(self) -> &'static str {
        match self {
            Bootproto::Dhcp => "dhcp",
            Bootproto::Static => "static",
        }
    }
}

/// The file systems the kickstart's partitioning accepts for /boot, / and /var.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fstype {
    Xfs,
    Ext4,
    Ext3,
    Btrfs,
}

impl Named for Fstype {
    const ALL: &'static [Fstype] = &[Fstype::Xfs, Fstype::Ext4, Fstype::Ext3, Fstype::Btrfs];

    fn name(self) -> &'static str {
        match self {
            Fstype::Xfs => "xfs",
            Fstype::Ext4 => "ext4",
            Fstype::Ext3 => "ext3",
            Fstype::Btrfs => "btrfs",
        }
    }
}

/// The Linux bonding driver's modes, as anaconda's `--bondopts=mode=` takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum BondMode {
    #[serde(rename = "balance-rr")]
    BalanceRr,
    #[serde(rename = "active-backup")]
    ActiveBackup,
    #[serde(rename = "balance-xor")]
    BalanceXor,
    #[serde(rename = "broadcast")]
    Broadcast,
    #[serde(rename = "802.3ad")]
    Lacp,
    #[serde(rename = "balance-tlb")]
    BalanceTlb,
    #[serde(rename = "balance-alb")]
    BalanceAlb,
}

impl Named for BondMode {
    const ALL: &'static [BondMode] = &[
        BondMode::BalanceRr,
        BondMode::ActiveBackup,
        BondMode::BalanceXor,
        BondMode::Broadcast,
        BondMode::Lacp,
        BondMode::BalanceTlb,
        BondMode::BalanceAlb,
    ];

    fn name(self) -> &'static str {
        match self {
            BondMode::BalanceRr => "balance-rr",
            BondMode::ActiveBackup => "active-backup",
            BondMode::BalanceXor => "balance-xor",
            BondMode::Broadcast => "broadcast",
            BondMode::Lacp => "802.3ad",
            BondMode::BalanceTlb => "balance-tlb",
            BondMode::BalanceAlb => "balance-alb",
        }
    }
}

/// `s` as a value of `T`; otherwise `None` and a diagnostic at `loc` naming the set and the
/// nearest name.
pub(super) fn parse_named<T: Named>(
    s: &str,
    loc: &Loc,
    what: &str,
    code: &'static str,
    d: &mut Diags,
) -> Option<T> {
    let v = T::from_name(s);
    if v.is_none() {
        let hint = hint(s, T::ALL.iter().map(|v| v.name()));
        d.push(
            loc,
            code,
            format!("{what} must be {}, not `{s}`{hint}", T::names()),
        );
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// JSON output (`kickstart check --json`, templates) spells every value as the inventory does.
    fn serde_agrees<T: Named + Serialize>() {
        for v in T::ALL {
            assert_eq!(serde_json::to_value(v).unwrap(), v.name());
        }
    }

    #[test]
    fn serialized_names_are_the_inventory_names() {
        serde_agrees::<Bootproto>();
        serde_agrees::<Fstype>();
        serde_agrees::<BondMode>();
    }

    #[test]
    fn wrong_names_say_where_what_and_the_nearest() {
        let loc = Loc::file(std::path::Path::new("inv.yaml"));
        let mut d = Diags::default();
        let got: Option<Bootproto> = parse_named("statc", &loc, "bootproto", "bootproto", &mut d);
        assert_eq!(got, None);
        assert_eq!(d.0[0].loc, loc);
        assert_eq!(d.0[0].code, "bootproto");
        assert_eq!(
            d.0[0].message,
            "bootproto must be dhcp or static, not `statc` (did you mean `static`?)"
        );
        assert_eq!(
            parse_named("802.3ad", &loc, "bond mode", "bond", &mut d),
            Some(BondMode::Lacp)
        );
        assert_eq!(d.0.len(), 1);
    }
}
