//! boot.sh: the sandbox's first process. It builds the sandbox's private mounts, masks
//! the boot units that would act on the host, and execs systemd in container mode.

use super::files::Layout;

/// Boot units that would act on the host the sandbox shares its filesystem with.
/// Masked by a /dev/null link in the sandbox's unit directory.
const MASKED_UNITS: &[&str] = &[
    // tmpfiles would empty the host's /tmp, journal-flush would write
    // the host's persistent journal, sysusers would edit /etc/passwd, binfmt registers
    // handlers kernel-wide, and so on.
    "systemd-tmpfiles-setup.service",
    "systemd-tmpfiles-setup-dev.service",
    "systemd-tmpfiles-clean.timer",
    "systemd-tmpfiles-clean.service",
    "systemd-sysctl.service",
    "systemd-modules-load.service",
    "systemd-udevd.service",
    "systemd-udev-trigger.service",
    "systemd-random-seed.service",
    "systemd-update-utmp.service",
    "ldconfig.service",
    "systemd-sysusers.service",
    "systemd-binfmt.service",
    "proc-sys-fs-binfmt_misc.automount",
    "systemd-journal-flush.service",
    "systemd-remount-fs.service",
    "systemd-hwdb-update.service",
    "systemd-journal-catalog-update.service",
    "systemd-update-done.service",
    "systemd-machine-id-commit.service",
    "systemd-firstboot.service",
    "systemd-pstore.service",
    "systemd-boot-system-token.service",
    // Kernel-wide state: module loading, the audit stream, TPM PCRs, the disk's
    // partition table, /usr overlays, the clock, seats and VTs.
    "modprobe@.service",
    "systemd-journald-audit.socket",
    "systemd-pcrphase.service",
    "systemd-pcrphase-sysinit.service",
    "systemd-pcrphase-initrd.service",
    "systemd-repart.service",
    "systemd-sysext.service",
    "systemd-timesyncd.service",
    "systemd-logind.service",
    // Kernel API filesystems the lab does not use.
    "dev-hugepages.mount",
    "dev-mqueue.mount",
    "sys-kernel-config.mount",
    "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount",
    "sys-fs-fuse-connections.mount",
];

pub fn script(l: &Layout) -> String {
    let mut masks = String::new();
    for unit in MASKED_UNITS {
        masks.push_str(&format!("ln -sf /dev/null /run/units/{unit}\n"));
    }
    format!(
        r#"#!/bin/sh
# salve lab: PID 1 of the sandbox until it execs systemd. Run by
#   setsid unshare --pid --fork --kill-child --mount --mount-proc --cgroup --uts --ipc {script}
# unshare makes every mount below private to the sandbox. `mount -n` because without
# it util-linux creates /run/mount on the host's /run before the tmpfs covers it.
set -eu
mount -n -t tmpfs tmpfs /run
# A private, empty /tmp and /var/tmp: nothing in the sandbox can touch the host's.
mount -n -t tmpfs tmpfs /tmp
mount -n -t tmpfs tmpfs /var/tmp
# Never write the host's journal.
mount -n -t tmpfs tmpfs /var/log/journal 2>/dev/null || true

# A private /dev. On the host's, systemd as PID 1 writes its console to the host's
# /dev/console, journald writes the host's kernel log through /dev/kmsg, and the
# journal's socket unit creates /dev/log. Here the console is {console}.
mkdir /run/dev
mount -n -t tmpfs -o mode=0755,nosuid tmpfs /run/dev
for node in null zero full random urandom tty; do
    : > /run/dev/$node
    mount -n --bind /dev/$node /run/dev/$node
done
: > {console}
: > /run/dev/console
mount -n --bind {console} /run/dev/console
mkdir /run/dev/pts /run/dev/shm
mount -n -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts /run/dev/pts
ln -s pts/ptmx /run/dev/ptmx
mount -n -t tmpfs -o mode=1777,nosuid,nodev tmpfs /run/dev/shm
ln -s /proc/self/fd /run/dev/fd
ln -s /proc/self/fd/0 /run/dev/stdin
ln -s /proc/self/fd/1 /run/dev/stdout
ln -s /proc/self/fd/2 /run/dev/stderr
mount -n --move /run/dev /dev

# Hide the SysV init scripts: with /etc/init.d/php8.2-fpm visible, `systemctl
# enable/disable` runs update-rc.d, which rewrites the host's /etc/rc?.d.
mkdir /run/no-init.d
mount -n --bind /run/no-init.d /etc/init.d

# The sandbox's own accounts (a `salve` user the host does not have) and polkit rules:
# the agent runs here unprivileged, as in production.
mount -n --bind {etc}/passwd /etc/passwd
mount -n --bind {etc}/group /etc/group
if [ -d /etc/polkit-1/rules.d ]; then
    mount -n --bind {etc}/polkit-rules.d /etc/polkit-1/rules.d
fi

mkdir -p /run/units
printf '[Unit]\nDescription=salve lab\n' > /run/units/lab.target
cp {units}/*.service /run/units/
{masks}# Units live in the sandbox only: the host's /etc/systemd/system is hidden, not changed.
mount -n --bind /run/units /etc/systemd/system
exec env container=salve-lab /lib/systemd/systemd --system --unit=lab.target
"#,
        script = l.s(l.boot_script()),
        console = l.s(l.console_log()),
        units = l.s(l.units()),
        etc = l.s(l.etc()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn boot_script_masks_units_and_keeps_mounts_out_of_the_hosts_run() {
        let script = script(&Layout::new(Path::new("/srv/lab")));
        assert!(script.contains("ln -sf /dev/null /run/units/systemd-tmpfiles-setup.service"));
        assert!(script.contains("mount -n --move /run/dev /dev"));
        for line in script.lines().filter(|l| l.starts_with("mount ")) {
            assert!(line.starts_with("mount -n "), "{line}");
        }
        assert!(script.ends_with("--system --unit=lab.target\n"));
    }
}
