using System.Text.Json;
using System.Text.Json.Serialization;
using Appliance.Store;

namespace Appliance.Cluster;

/// <summary>
/// What a node keeps on disk about one unit's replica (units/NAME/cluster.json), written
/// atomically (temporary file, fsync, rename, fsync of the directory):
/// - History: one generation per promotion (epoch, node, first seq it wrote). Two copies of a
///   unit are consistent when one history is a prefix of the other up to the shorter one's
///   last seq; anything else is a split brain.
/// - Outdated: this copy may lack records the primary acknowledged (it agreed to be left
///   behind so the primary could go on alone); it is never promoted until a resync clears it.
/// </summary>
public sealed class UnitRecord
{
    public List<Generation> History { get; set; } = [];
    public bool Outdated { get; set; }
    /// <summary>The primary's outdate request this copy has agreed to (echoed in heartbeats).</summary>
    public long OutdatedToken { get; set; }

    [JsonIgnore] public long Epoch => History.Count > 0 ? History[^1].Epoch : 0;

    public static UnitRecord Load(string dir)
    {
        var path = Path.Combine(dir, "cluster.json");
        if (!File.Exists(path)) return new UnitRecord();
        return JsonSerializer.Deserialize(File.ReadAllText(path), ClusterJson.Default.UnitRecord) ?? new UnitRecord();
    }

    /// <summary>Writes the record (the cluster loop and a replication connection may both save: one at a time).</summary>
    public void Save(string dir)
    {
        lock (this) SaveLocked(dir);
    }

    private void SaveLocked(string dir)
    {
        System.IO.Directory.CreateDirectory(dir);
        var path = Path.Combine(dir, "cluster.json");
        var tmp = path + ".tmp";
        using (var f = new FileStream(tmp, FileMode.Create, FileAccess.Write))
        {
            JsonSerializer.Serialize(f, this, ClusterJson.Default.UnitRecord);
            f.Flush(flushToDisk: true);
        }
        File.Move(tmp, path, overwrite: true);
        FileSystem.FsyncDirectory(dir);
    }

    /// <summary>
    /// Whether a copy with <paramref name="other"/>'s history and last seq is a prefix of this
    /// one (this copy may continue from it): its last generation is one of ours, started at the
    /// same seq, and it holds nothing past where that generation ended here.
    /// </summary>
    public bool Extends(IReadOnlyList<Generation> other, long otherLastSeq)
    {
        // A copy that never had a primary of its own is only a prefix when empty (two data
        // directories filled apart from each other share nothing).
        if (other.Count == 0) return otherLastSeq == 0;
        var last = other[^1];
        var i = History.FindIndex(g => g.Epoch == last.Epoch);
        if (i < 0 || History[i].StartSeq != last.StartSeq || History[i].Node != last.Node) return false;
        return i + 1 >= History.Count || otherLastSeq < History[i + 1].StartSeq;
    }
}

public sealed record Generation(long Epoch, string Node, long StartSeq);

[JsonSerializable(typeof(UnitRecord))]
[JsonSourceGenerationOptions(WriteIndented = true)]
internal sealed partial class ClusterJson : JsonSerializerContext;
