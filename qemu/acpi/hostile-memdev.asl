/*
 * A hostile firmware table for the runtime-hotplug test (make test,
 * hotplug::events): a memory device (PNP0C80) whose _CRS claims RAM the
 * kernel booted with, [mem 0x10000000-0x17ffffff]. Its _OST records what
 * the kernel reported; its _EJ0 does nothing, so the device stays present.
 *
 * Built with `iasl hostile-memdev.asl` (acpica-tools 20200925); the .aml
 * beside it is what QEMU loads (-acpitable file=...).
 */
DefinitionBlock ("", "SSDT", 2, "TESSRA", "HOSTILE", 1)
{
    Scope (\_SB)
    {
        Device (HMEM)
        {
            Name (_HID, EisaId ("PNP0C80"))
            Name (_UID, "hostile")
            Name (OEVT, Ones)
            Name (OSTS, Ones)
            Method (_STA, 0, NotSerialized)
            {
                Return (0x0F)
            }
            Name (_CRS, ResourceTemplate ()
            {
                QWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, Cacheable, ReadWrite,
                    0x0000000000000000, 0x0000000010000000, 0x0000000017FFFFFF,
                    0x0000000000000000, 0x0000000008000000)
            })
            Method (_OST, 3, NotSerialized)
            {
                OEVT = Arg0
                OSTS = Arg1
            }
            Method (_EJ0, 1, NotSerialized)
            {
            }
        }
    }
}
