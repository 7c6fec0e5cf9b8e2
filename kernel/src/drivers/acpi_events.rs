//! ACPI events at run time, as Linux's `drivers/acpi` (`osl.c`, `evgpe.c`,
//! `bus.c`) takes them: the firmware raises the SCI, a GPE's status bit
//! says which event, the GPE's AML method (`\_GPE._Lxx` / `_Exx`) runs and
//! `Notify`s a device, and the device's driver acts on the notify.
//!
//! - The AML interpreter is the `acpi` crate's (6.1.1, with `Notify`:
//!   `kernel/vendor/acpi/PATCHES.md`), loaded with the DSDT and every SSDT
//!   Tessera's own table walk accepted; this module is its [`Host`]
//!   (memory, ports, PCI configuration, time, mutexes, notifies).
//! - The SCI (FADT `SCI_INT`, routed by the MADT's override) reaches
//!   `sci` through the I/O APIC. In interrupt context it only masks the
//!   GPEs that fired and records them; the methods run in [`poll`], which
//!   the shell's idle loop calls, as Linux defers them to `kacpid`. A level
//!   GPE's status is cleared after its method, an edge GPE's before; then
//!   the GPE is enabled again.
//! - `Notify`s are queued while a method runs and dispatched after it, by
//!   the notified device's `_HID`, to the handler a driver registered
//!   ([`register_notify_handler`]): `PNP0C80` memory devices to
//!   `acpi_memhotplug`, the `ACPI0012` NVDIMM root to `acpi_nfit`.
//!
//! Lock order: `AML` (one evaluation at a time), then the drivers' own
//! locks; `GPE` is taken with interrupts off and nothing else under it.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::ptr::NonNull;
use core::str::FromStr;
use core::sync::atomic::{AtomicU64, Ordering};

use acpi::events::{self, FadtEvents, Gpe0, GpeTrigger, NotifyName};
use aml::aml::namespace::{AmlName, NamespaceLevelKind};
use aml::aml::object::{Object, WrappedObject};
use aml::aml::{AmlError, Interpreter};
use aml::{Handle, Handler, PhysicalMapping};
use spin::{Mutex, Once};
use x86_64::VirtAddr;
use x86_64::instructions::port::Port;

use crate::arch::{apic, ioapic, paging, time};

/// The interpreter's host: what AML may touch.
#[derive(Clone, Copy, Debug)]
pub struct Host;

/// The virtual address of physical `phys` if `len` bytes there are mapped
/// (the bootloader's physical-memory map covers the firmware's ranges).
fn mapped(phys: usize, len: usize) -> Option<u64> {
    let base = crate::boot::phys_to_virt(phys as u64)?;
    let end = base.checked_add(len as u64)?;
    let mut page = base & !0xfff;
    while page < end {
        paging::translate(VirtAddr::new(page))?;
        page += 4096;
    }
    Some(base)
}

macro_rules! mem_access {
    ($read:ident, $write:ident, $t:ty) => {
        fn $read(&self, address: usize) -> $t {
            match mapped(address, size_of::<$t>()) {
                // SAFETY: the bytes are mapped (checked by `mapped`); AML's
                // SystemMemory regions are the firmware's to read.
                Some(v) => unsafe { core::ptr::read_volatile(v as *const $t) },
                None => {
                    log::warn!("ACPI: AML read of unmapped memory {address:#x}");
                    <$t>::MAX
                }
            }
        }
        fn $write(&self, address: usize, value: $t) {
            match mapped(address, size_of::<$t>()) {
                // SAFETY: as for the read; the firmware's AML owns the
                // region it declared and writes only there.
                Some(v) => unsafe { core::ptr::write_volatile(v as *mut $t, value) },
                None => log::warn!("ACPI: AML write to unmapped memory {address:#x} ignored"),
            }
        }
    };
}

macro_rules! io_access {
    ($read:ident, $write:ident, $t:ty) => {
        fn $read(&self, port: u16) -> $t {
            // SAFETY: the firmware's AML names this port in an
            // OperationRegion; the OS lends it the port, as Linux's
            // `acpi_os_read_port` does.
            unsafe { Port::<$t>::new(port).read() }
        }
        fn $write(&self, port: u16, value: $t) {
            // SAFETY: as for the read.
            unsafe { Port::<$t>::new(port).write(value) }
        }
    };
}

/// PCI configuration mechanism #1 (ports 0xcf8/0xcfc).
fn pci_address(a: aml::PciAddress, offset: u16) -> u32 {
    0x8000_0000
        | (u32::from(a.bus()) << 16)
        | (u32::from(a.device()) << 11)
        | (u32::from(a.function()) << 8)
        | (u32::from(offset) & 0xfc)
}

fn pci_read(a: aml::PciAddress, offset: u16) -> u32 {
    // SAFETY: 0xcf8/0xcfc are the PC's PCI configuration ports; reading a
    // configuration dword has no side effect on the devices QEMU models.
    unsafe {
        Port::<u32>::new(0xcf8).write(pci_address(a, offset));
        Port::<u32>::new(0xcfc).read()
    }
}

fn pci_write(a: aml::PciAddress, offset: u16, value: u32, width: u32) {
    let shift = u32::from(offset & 3) * 8;
    let mask = if width == 32 { u32::MAX } else { ((1u32 << width) - 1) << shift };
    let old = pci_read(a, offset);
    let new = (old & !mask) | ((value << shift) & mask);
    // SAFETY: as in `pci_read`; the firmware's AML asked for this write to
    // the configuration space region it declared.
    unsafe {
        Port::<u32>::new(0xcf8).write(pci_address(a, offset));
        Port::<u32>::new(0xcfc).write(new);
    }
}

impl Handler for Host {
    unsafe fn map_physical_region<T>(&self, phys: usize, size: usize) -> PhysicalMapping<Self, T> {
        let virt = crate::boot::phys_to_virt(phys as u64).unwrap_or(0);
        PhysicalMapping {
            physical_start: phys,
            virtual_start: NonNull::new(virt as *mut T).unwrap_or(NonNull::dangling()),
            region_length: size,
            mapped_length: size,
            handler: *self,
        }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}

    mem_access!(read_u8, write_u8, u8);
    mem_access!(read_u16, write_u16, u16);
    mem_access!(read_u32, write_u32, u32);
    mem_access!(read_u64, write_u64, u64);
    io_access!(read_io_u8, write_io_u8, u8);
    io_access!(read_io_u16, write_io_u16, u16);
    io_access!(read_io_u32, write_io_u32, u32);

    fn read_pci_u8(&self, a: aml::PciAddress, offset: u16) -> u8 {
        (pci_read(a, offset) >> ((offset & 3) * 8)) as u8
    }
    fn read_pci_u16(&self, a: aml::PciAddress, offset: u16) -> u16 {
        (pci_read(a, offset) >> ((offset & 2) * 8)) as u16
    }
    fn read_pci_u32(&self, a: aml::PciAddress, offset: u16) -> u32 {
        pci_read(a, offset)
    }
    fn write_pci_u8(&self, a: aml::PciAddress, offset: u16, value: u8) {
        pci_write(a, offset, value.into(), 8);
    }
    fn write_pci_u16(&self, a: aml::PciAddress, offset: u16, value: u16) {
        pci_write(a, offset, value.into(), 16);
    }
    fn write_pci_u32(&self, a: aml::PciAddress, offset: u16, value: u32) {
        pci_write(a, offset, value, 32);
    }

    fn nanos_since_boot(&self) -> u64 {
        time::uptime_us() * 1000
    }

    fn stall(&self, microseconds: u64) {
        let end = time::uptime_us() + microseconds;
        while time::uptime_us() < end {
            core::hint::spin_loop();
        }
    }

    fn sleep(&self, milliseconds: u64) {
        self.stall(milliseconds.min(10_000) * 1000);
    }

    /// AML runs one evaluation at a time (under `AML`), so its mutexes
    /// never contend: a handle is only a number.
    fn create_mutex(&self) -> Handle {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Handle(NEXT.fetch_add(1, Ordering::Relaxed) as u32)
    }

    fn acquire(&self, _mutex: Handle, _timeout: u16) -> Result<(), AmlError> {
        Ok(())
    }

    fn release(&self, _mutex: Handle) {}

    fn handle_debug(&self, object: &Object) {
        log::debug!("ACPI Debug: {object}");
    }

    fn handle_notify(&self, object: &AmlName, value: u64) {
        NOTIFIES.lock().push((object.as_string(), value));
    }

    fn handle_fatal_error(&self, fatal_type: u8, fatal_code: u32, fatal_arg: u64) {
        log::error!(
            "ACPI: AML Fatal: type {fatal_type:#x} code {fatal_code:#x} argument {fatal_arg:#x}"
        );
    }
}

/// The interpreter and what the FADT says about events.
struct Events {
    aml: Interpreter<Host>,
    gpe0: Option<Gpe0>,
    /// GPEs with a method: (number, trigger, method path).
    methods: Vec<(u32, GpeTrigger, AmlName)>,
}

impl Events {
    /// The GPE methods' paths, space-separated, or `none`.
    fn method_names(&self) -> String {
        let names: Vec<String> = self.methods.iter().map(|(_, _, p)| p.as_string()).collect();
        if names.is_empty() { "none".into() } else { names.join(" ") }
    }
}

static EVENTS: Once<Events> = Once::new();
/// One AML evaluation at a time.
static AML: Mutex<()> = Mutex::new(());
/// The GPE enable registers' read-modify-writes (with interrupts off).
static GPE: Mutex<()> = Mutex::new(());
/// GPEs the SCI saw fire, masked until [`poll`] runs their methods.
static PENDING: AtomicU64 = AtomicU64::new(0);
/// Notifies queued by AML, dispatched after the method that made them.
static NOTIFIES: Mutex<Vec<(String, u64)>> = Mutex::new(Vec::new());
/// Counts: GPE methods run, notifies dispatched.
static GPES_RUN: AtomicU64 = AtomicU64::new(0);
static NOTIFIES_DONE: AtomicU64 = AtomicU64::new(0);

/// Evaluates `path` (an object or a method with `args`), one evaluation
/// at a time.
pub fn evaluate(path: &str, args: Vec<WrappedObject>) -> Result<WrappedObject, String> {
    let ev = EVENTS.get().ok_or("no AML interpreter")?;
    let name = AmlName::from_str(path).map_err(|e| alloc::format!("{path}: {e:?}"))?;
    let _aml = AML.lock();
    ev.aml.evaluate(name, args).map_err(|e| alloc::format!("{path}: {e:?}"))
}

/// [`evaluate`] for an integer result.
pub fn evaluate_integer(path: &str, args: Vec<WrappedObject>) -> Result<u64, String> {
    let v = evaluate(path, args)?;
    v.as_integer().map_err(|e| alloc::format!("{path}: not an integer ({e:?})"))
}

/// An integer argument.
pub fn int(v: u64) -> WrappedObject {
    Object::Integer(v).wrap()
}

/// A device's `_HID` as text (an EISA ID integer decoded).
pub fn hid(device: &str) -> Option<String> {
    let v = evaluate(&alloc::format!("{device}._HID"), Vec::new()).ok()?;
    match &*v {
        Object::Integer(i) => u32::try_from(*i).ok().and_then(events::eisa_id),
        Object::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// Every device in the namespace, by absolute path.
pub fn devices() -> Vec<String> {
    let Some(ev) = EVENTS.get() else { return Vec::new() };
    let mut out = Vec::new();
    let _aml = AML.lock();
    let mut ns = ev.aml.namespace.lock();
    let _ = ns.traverse(|path, level| {
        if level.kind == NamespaceLevelKind::Device {
            out.push(path.as_string());
        }
        Ok(true)
    });
    out
}

/// Whether the interpreter is up.
pub fn ready() -> bool {
    EVENTS.get().is_some()
}

/// Loads the DSDT and SSDTs into the interpreter, finds the GPE methods,
/// enables their GPEs and routes the SCI. Logs why when it cannot.
pub fn init() {
    let start = time::uptime_us();
    let Some(t) = crate::acpi::get().and_then(|a| a.tables.as_ref()) else { return };
    let usable = |sig: [u8; 4]| t.find_all(sig).filter(|e| e.problem.is_none());
    let Some(fadt) = usable(*b"FACP").next() else {
        log::info!("ACPI: no FADT: no ACPI events");
        return;
    };
    let Some(fe) = FadtEvents::from_fadt(&fadt.bytes) else {
        log::warn!("ACPI: FADT too short for its event fields: no ACPI events");
        return;
    };
    let registers = {
        let mut copy = alloc::vec![0u8; size_of::<aml::sdt::fadt::Fadt>()];
        let n = copy.len().min(fadt.bytes.len());
        copy[..n].copy_from_slice(&fadt.bytes[..n]);
        // SAFETY: `Fadt` is a packed struct of integers (alignment 1, any
        // bit pattern valid) and `copy` holds exactly size_of::<Fadt>()
        // bytes: the table, zero-padded where it is shorter.
        let f: aml::sdt::fadt::Fadt = unsafe { core::ptr::read_unaligned(copy.as_ptr().cast()) };
        match aml::registers::FixedRegisters::new(&f, Host) {
            // The interpreter's API takes an `Arc`; it is only used under `AML`.
            #[allow(clippy::arc_with_non_send_sync)]
            Ok(r) => alloc::sync::Arc::new(r),
            Err(e) => {
                log::warn!("ACPI: FADT registers: {e:?}: no ACPI events");
                return;
            }
        }
    };
    let tables: Vec<_> = usable(*b"DSDT").take(1).chain(usable(*b"SSDT")).collect();
    let Some(dsdt) = tables.first() else {
        log::warn!("ACPI: no DSDT: no ACPI events");
        return;
    };
    let rev = dsdt.header.map_or(2, |h| h.revision);
    let interp = Interpreter::new(Host, rev, registers, None);
    for t in &tables {
        let sig = t.signature().map(|s| String::from_utf8_lossy(&s).into_owned());
        let Some(body) = t.bytes.get(36..) else { continue };
        if let Err(e) = interp.load_table(body) {
            log::error!(
                "ACPI: {} at {:#x}: AML load failed: {e:?}",
                sig.unwrap_or_default(),
                t.addr
            );
        }
    }
    // Tell the firmware interrupts go through the I/O APIC (`_PIC(1)`),
    // as Linux's `acpi_bus_init_irq` does.
    let pic = AmlName::from_str("\\_PIC").expect("a valid name");
    if let Err(e) = interp.evaluate_if_present(pic, alloc::vec![int(1)]) {
        log::warn!("ACPI: \\_PIC: {e:?}");
    }
    let gpe0 = fe.gpe0();
    let mut methods = Vec::new();
    if let Some(g) = gpe0 {
        let mut ns = interp.namespace.lock();
        for n in 0..g.count() {
            for trig in [GpeTrigger::Level, GpeTrigger::Edge] {
                let Some(m) = events::gpe_method_name(n, trig) else { continue };
                let Ok(path) = AmlName::from_str(&alloc::format!("\\_GPE.{m}")) else { continue };
                if ns.get(path.clone()).is_ok() {
                    methods.push((n, trig, path));
                }
            }
        }
    }
    let ev = EVENTS.call_once(|| Events { aml: interp, gpe0, methods });
    log::info!(
        "ACPI: Interpreter enabled: {} tables, {} devices, GPE methods {} ({} us)",
        tables.len(),
        devices().len(),
        ev.method_names(),
        time::uptime_us() - start
    );
    let Some(g) = gpe0 else {
        log::info!("ACPI: no GPE0 block: no ACPI events");
        return;
    };
    enable_acpi_mode(&fe);
    // Clear stale status, then enable the GPEs that have a method
    // (`acpi_update_all_gpes`).
    for r in 0..u16::from(g.registers) {
        let mut want = 0u8;
        for &(n, _, _) in &ev.methods {
            if n / 8 == u32::from(r) {
                want |= 1 << (n % 8);
            }
        }
        // SAFETY: the FADT names the GPE0 block; writing 1s to status bits
        // clears them and the enable register takes our mask.
        unsafe {
            Port::<u8>::new(g.status + r).write(0xff);
            Port::<u8>::new(g.enable + r).write(want);
        }
    }
    route_sci(&fe);
}

/// Sets `SCI_EN` through the SMI command port if the firmware left the
/// machine in legacy mode (Linux's `acpi_enable`).
fn enable_acpi_mode(fe: &FadtEvents) {
    const SCI_EN: u16 = 1;
    let Ok(cnt) = u16::try_from(fe.pm1a_cnt) else { return };
    let mut pm1a = Port::<u16>::new(cnt);
    // SAFETY: the FADT names this port as PM1a control; reading it has no
    // side effect.
    if cnt == 0 || unsafe { pm1a.read() } & SCI_EN != 0 {
        return;
    }
    let Ok(smi) = u16::try_from(fe.smi_cmd) else { return };
    if smi == 0 || fe.acpi_enable == 0 {
        return;
    }
    // SAFETY: the FADT names the SMI command port and ACPI_ENABLE.
    unsafe { Port::<u8>::new(smi).write(fe.acpi_enable) };
    for _ in 0..100_000 {
        // SAFETY: as above.
        if unsafe { pm1a.read() } & SCI_EN != 0 {
            log::info!("ACPI: Enabled (SCI_EN set through SMI_CMD {smi:#x})");
            return;
        }
    }
    log::warn!("ACPI: the firmware did not set SCI_EN");
}

/// Routes the SCI through the I/O APIC to the boot CPU.
fn route_sci(fe: &FadtEvents) {
    let madt = crate::acpi::madt();
    let Some((_, addr, gsi_base)) = madt.and_then(|m| m.io_apics().next()) else {
        log::warn!("ACPI: no I/O APIC: the SCI is not routed, events are not seen");
        return;
    };
    let r = events::sci_route(madt, fe.sci_int);
    // SAFETY: FIXMAP_IOAPIC is reserved for the I/O APIC's page
    // (boot::layout) and `addr` is the I/O APIC's register page (MADT).
    let lines = unsafe {
        ioapic::init(
            crate::boot::layout::FIXMAP_IOAPIC,
            addr.into(),
            gsi_base,
            &mut crate::mm::page_alloc::alloc_frame,
        )
    };
    if let Err(e) = lines {
        log::warn!("ACPI: {e}: the SCI is not routed");
        return;
    }
    ioapic::set_hook(sci);
    let polarity = if r.active_low { ioapic::Polarity::Low } else { ioapic::Polarity::High };
    let trigger = if r.level { ioapic::Trigger::Level } else { ioapic::Trigger::Edge };
    match ioapic::route(r.gsi, ioapic::SCI_VECTOR, polarity, trigger, apic::id()) {
        Ok(()) => log::info!(
            "ACPI: SCI (IRQ{}) routed to GSI {} ({}, {}), vector {:#x}",
            fe.sci_int,
            r.gsi,
            if r.level { "level" } else { "edge" },
            if r.active_low { "low" } else { "high" },
            ioapic::SCI_VECTOR
        ),
        Err(e) => log::warn!("ACPI: SCI: {e}"),
    }
}

/// The SCI, in interrupt context: masks each enabled GPE whose status is
/// set and records it for [`poll`]. Port I/O only: no allocation, no lock
/// but `GPE` (taken elsewhere only with interrupts off).
fn sci() {
    let Some(g) = EVENTS.get().and_then(|e| e.gpe0) else { return };
    let _gpe = GPE.lock();
    for r in 0..u16::from(g.registers.min(8)) {
        // SAFETY: the FADT's GPE0 block: status and enable byte registers.
        let (sts, en) =
            unsafe { (Port::<u8>::new(g.status + r).read(), Port::<u8>::new(g.enable + r).read()) };
        let fired = sts & en;
        if fired != 0 {
            // SAFETY: as above; clearing enable bits masks those GPEs.
            unsafe { Port::<u8>::new(g.enable + r).write(en & !fired) };
            PENDING.fetch_or(u64::from(fired) << (8 * r), Ordering::AcqRel);
        }
    }
}

/// Sets or clears GPE `n`'s enable bit.
fn set_gpe_enable(g: Gpe0, n: u32, on: bool) {
    let port = g.enable + (n / 8) as u16;
    x86_64::instructions::interrupts::without_interrupts(|| {
        let _gpe = GPE.lock();
        // SAFETY: the FADT's GPE0 enable register for GPE `n`.
        unsafe {
            let mut p = Port::<u8>::new(port);
            let v = p.read();
            p.write(if on { v | 1 << (n % 8) } else { v & !(1 << (n % 8)) });
        }
    });
}

fn clear_gpe_status(g: Gpe0, n: u32) {
    // SAFETY: writing a 1 clears GPE `n`'s status bit.
    unsafe { Port::<u8>::new(g.status + (n / 8) as u16).write(1 << (n % 8)) };
}

/// Runs what the SCI recorded: each fired GPE's method, then the notifies
/// it made. Cheap when nothing is pending; the shell's idle loop calls it.
pub fn poll() {
    let bits = PENDING.swap(0, Ordering::AcqRel);
    if bits == 0 && NOTIFIES.lock().is_empty() {
        return;
    }
    let Some(ev) = EVENTS.get() else { return };
    let Some(g) = ev.gpe0 else { return };
    for n in (0..64).filter(|n| bits & (1 << n) != 0) {
        let Some((_, trig, path)) = ev.methods.iter().find(|m| m.0 == n) else { continue };
        if *trig == GpeTrigger::Edge {
            clear_gpe_status(g, n);
        }
        let result = {
            let _aml = AML.lock();
            ev.aml.evaluate(path.clone(), Vec::new())
        };
        GPES_RUN.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = result {
            log::error!("ACPI: {}: {e:?}", path.as_string());
        }
        if *trig == GpeTrigger::Level {
            clear_gpe_status(g, n);
        }
        set_gpe_enable(g, n, true);
    }
    dispatch_notifies();
}

/// Dispatches the queued notifies by the notified device's `_HID`.
fn dispatch_notifies() {
    loop {
        let next = {
            let mut q = NOTIFIES.lock();
            if q.is_empty() { None } else { Some(q.remove(0)) }
        };
        let Some((path, value)) = next else { return };
        notify(&path, value);
    }
}

/// A driver's notify handler: `(device path, value)`.
pub type NotifyHandler = fn(&str, u64);

/// The drivers' notify handlers by `_HID` (Linux's `acpi_install_notify_handler`
/// through the scan handlers): registered by `init`, so that this module
/// imports no driver.
static HANDLERS: Mutex<Vec<(&'static str, NotifyHandler)>> = Mutex::new(Vec::new());

/// Registers `f` for notifies on devices whose `_HID` is `hid`.
pub fn register_notify_handler(hid: &'static str, f: NotifyHandler) {
    HANDLERS.lock().push((hid, f));
}

/// One notify: `Notify(path, value)` as if AML made it (the `acpi notify`
/// shell command injects them).
pub fn notify(path: &str, value: u64) {
    NOTIFIES_DONE.fetch_add(1, Ordering::Relaxed);
    // One spelling for every path (`\_SB.X` is `\_SB_.X___`), so that a
    // typed path finds the device the firmware's notifies name.
    let normal = AmlName::from_str(path).map(|n| n.as_string());
    let path = normal.as_deref().unwrap_or(path);
    let hid = hid(path);
    log::debug!("ACPI: Notify({path}, {value:#x}) [{}]", hid.as_deref().unwrap_or("no _HID"));
    let handler = hid
        .as_deref()
        .and_then(|h| HANDLERS.lock().iter().find(|(id, _)| *id == h).map(|&(_, f)| f));
    match (hid.as_deref(), handler) {
        (Some(_), Some(f)) => f(path, value),
        (Some(h), None) => log::info!("ACPI: {path} [{h}]: {} not handled", NotifyName(value)),
        (None, _) => {
            log::warn!("ACPI: Notify({path}, {value:#x}): no such device (no _HID); ignored")
        }
    }
}

/// `_OST(event, status)` on `device`, if it has one (Linux's
/// `acpi_evaluate_ost`).
pub fn ost(device: &str, event: u64, status: u64) {
    let path = alloc::format!("{device}._OST");
    let args = alloc::vec![int(event), int(status), Object::Buffer(Vec::new()).wrap()];
    match evaluate(&path, args) {
        Ok(_) => log::debug!("ACPI: {path}({event:#x}, {status:#x})"),
        Err(e) if e.contains("ObjectDoesNotExist") => {}
        Err(e) => log::warn!("ACPI: {e}"),
    }
}

/// One line of state for the shell's `acpi events`.
pub fn summary() -> String {
    let Some(ev) = EVENTS.get() else { return "acpi: no AML interpreter".to_string() };
    alloc::format!(
        "acpi: SCI {} interrupts, GPE methods run {}, notifies {}; GPE methods: {}",
        ioapic::sci_count(),
        GPES_RUN.load(Ordering::Relaxed),
        NOTIFIES_DONE.load(Ordering::Relaxed),
        ev.method_names()
    )
}
