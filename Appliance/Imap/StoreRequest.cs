using Appliance.Store;

namespace Appliance.Imap;

/// <summary>
/// The arguments of STORE after the sequence set (RFC 9051 §6.4.6, RFC 7162 §3.1.3):
/// <c>[(UNCHANGEDSINCE n)] ("+"/"-")FLAGS[.SILENT] (flag-list | flag *(SP flag))</c>.
/// </summary>
public sealed record StoreRequest(FlagMode Mode, bool Silent, MessageFlags Flags, string[] Keywords, long? UnchangedSince)
{
    public static StoreRequest Parse(IReadOnlyList<ImapValue> args, int start)
    {
        int i = start;
        long? unchangedSince = null;
        if (i < args.Count && args[i].IsList)
        {
            // store-modifiers: RFC 7162 defines UNCHANGEDSINCE mod-sequence-valzer only.
            var mods = args[i].Items;
            if (mods.Count != 2 || !mods[0].Is("UNCHANGEDSINCE") || !mods[1].TryGetNumber(out long n))
                throw ImapException.Bad("Invalid STORE modifier");
            unchangedSince = n;
            i++;
        }
        if (i >= args.Count || !args[i].IsAtom) throw ImapException.Bad("Missing STORE data item");
        var (mode, silent) = args[i].Keyword switch
        {
            "FLAGS" => (FlagMode.Replace, false),
            "FLAGS.SILENT" => (FlagMode.Replace, true),
            "+FLAGS" => (FlagMode.Add, false),
            "+FLAGS.SILENT" => (FlagMode.Add, true),
            "-FLAGS" => (FlagMode.Remove, false),
            "-FLAGS.SILENT" => (FlagMode.Remove, true),
            _ => throw ImapException.Bad("Unknown STORE data item"),
        };
        i++;
        if (i >= args.Count) throw ImapException.Bad("Missing flags");

        ImapValue flags;
        if (args[i].IsList)
        {
            // "FLAGS ()" is valid for replace: it clears every flag.
            if (i + 1 != args.Count) throw ImapException.Bad("Too many arguments");
            flags = args[i];
        }
        else
        {
            // RFC 9051 store-att-flags: (flag-list / (flag *(SP flag))).
            var list = new List<ImapValue>();
            for (; i < args.Count; i++)
            {
                if (!args[i].IsAtom) throw ImapException.Bad("Flags must be atoms");
                list.Add(args[i]);
            }
            flags = ImapValue.List(list);
        }
        foreach (var f in flags.Items)
        {
            // \Recent cannot be stored (RFC 3501 §2.3.2) and does not exist in IMAP4rev2.
            if (f.Is(@"\Recent")) throw ImapException.Bad(@"\Recent cannot be stored");
        }
        var (systemFlags, keywords) = ImapFlags.Parse(flags);
        return new StoreRequest(mode, silent, systemFlags, keywords, unchangedSince);
    }
}
