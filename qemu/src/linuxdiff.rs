//! `make linux-diff`: Tessera and Debian's Linux on the same QEMU machine
//! with the same options, their memory views side by side.

use std::time::Duration;

use crate::linux;

/// What Linux prints for the comparison, each part after a `== part NAME`
/// line: the kernel log, `/proc/iomem`, `/proc/zoneinfo`, memory blocks
/// (`memoryN state valid_zones phys_index`) and nd regions and namespaces.
pub const LINUX_SCRIPT: &str = r#"echo '== part dmesg'
dmesg
echo '== part iomem'
cat /proc/iomem
echo '== part zoneinfo'
cat /proc/zoneinfo
echo '== part memory'
for b in /sys/devices/system/memory/memory*; do
    [ -d "$b" ] || continue
    echo "${b##*/} $(cat $b/state) $(cat $b/valid_zones 2>/dev/null) $(cat $b/phys_index)"
done
echo '== part nd'
for d in /sys/bus/nd/devices/*; do
    [ -e "$d" ] || continue
    n=${d##*/}
    drv=$(readlink $d/driver 2>/dev/null)
    line="$n driver=${drv##*/}"
    for a in size resource mode align; do
        [ -r $d/$a ] && line="$line $a=$(cat $d/$a 2>/dev/null)"
    done
    echo "$line"
done
"#;

/// Boots Linux alone and prints its serial output (`qemu linux`).
pub fn linux_only(
    firmware: boot::Firmware,
    mem: &str,
    extra: &[String],
    cmdline: &str,
    timeout: Duration,
) -> Result<bool, String> {
    let kit = linux::kit()?;
    let out = linux::boot_on(&kit, firmware, mem, extra, cmdline, LINUX_SCRIPT, "linux", timeout)?;
    print!("{out}");
    Ok(true)
}
