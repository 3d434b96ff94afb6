using System.Buffers.Binary;
using System.IO.Hashing;

namespace Appliance.Store;

/// <summary>
/// Append-only operation journal of one partition: segment files named by their first sequence
/// number (journal/00000000000000000001.log …), each record
/// <c>[u32 length][u32 crc32][u64 seq][u8 type][body]</c> with the CRC over seq, type and body.
/// Implementation notes: one writer (the partition's writer loop) appends batches and fsyncs
/// once per batch (group commit); a torn record at the tail (crash mid-write) is cut off when
/// the journal is opened, so sequence numbers stay dense. Readers open their own file handles.
/// </summary>
public sealed class Journal : IDisposable
{
    private const int HeaderSize = 4 + 4 + 8 + 1;
    private const int MaxRecordBytes = 1 << 30;
    private readonly string _dir;
    private readonly long _segmentBytes;
    private FileStream? _current;

    public long LastSeq { get; private set; }

    private Journal(string dir, long segmentBytes)
    {
        _dir = dir;
        _segmentBytes = segmentBytes;
    }

    public static Journal Open(string dir, long segmentBytes)
    {
        System.IO.Directory.CreateDirectory(dir);
        var journal = new Journal(dir, segmentBytes);
        var segments = journal.Segments();
        if (segments.Count > 0)
        {
            var last = segments[^1];
            var (lastSeq, validLength) = ScanSegment(last.Path);
            journal.LastSeq = lastSeq == 0 ? last.FirstSeq - 1 : lastSeq;
            journal._current = new FileStream(last.Path, FileMode.Open, FileAccess.Write, FileShare.Read);
            if (journal._current.Length != validLength)
            {
                journal._current.SetLength(validLength);
                journal._current.Flush(true);
            }
            journal._current.Seek(0, SeekOrigin.End);
        }
        return journal;
    }

    /// <summary>
    /// Appends ops as seq LastSeq+1… and returns only once they are on disk (fsync).
    /// <paramref name="beforeSync"/> sees the records once written and before the fsync, so a
    /// replica can store them while this disk does (DRBD overlaps them the same way).
    /// </summary>
    public IReadOnlyList<JournalRecord> Append(IReadOnlyList<JournalOp> ops, Action<IReadOnlyList<JournalRecord>>? beforeSync = null)
    {
        if (_current is null || _current.Length >= _segmentBytes) Rotate();
        var records = new JournalRecord[ops.Count];
        using var buffer = new MemoryStream();
        using var w = new BinaryWriter(buffer);
        for (var i = 0; i < ops.Count; i++)
        {
            var seq = LastSeq + 1 + i;
            records[i] = new JournalRecord(seq, ops[i]);
            var start = buffer.Position;
            w.Write(0L); // placeholder for length + crc
            w.Write(seq);
            w.Write((byte)ops[i].Type);
            ops[i].Write(w);
            w.Flush();
            var end = buffer.Position;
            var bytes = buffer.GetBuffer();
            var payload = bytes.AsSpan((int)start + 8, (int)(end - start - 8));
            BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan((int)start), (uint)(payload.Length - 9));
            BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan((int)start + 4), Crc32.HashToUInt32(payload));
        }
        _current!.Write(buffer.GetBuffer(), 0, (int)buffer.Length);
        _current.Flush(flushToDisk: false);
        beforeSync?.Invoke(records);
        _current.Flush(flushToDisk: true);
        LastSeq += ops.Count;
        return records;
    }

    /// <summary>Reads every intact record with a sequence number greater than <paramref name="afterSeq"/>.</summary>
    public IEnumerable<JournalRecord> ReadFrom(long afterSeq)
    {
        var segments = Segments();
        for (var i = 0; i < segments.Count; i++)
        {
            if (i + 1 < segments.Count && segments[i + 1].FirstSeq <= afterSeq + 1) continue;
            foreach (var raw in RawRecords(segments[i].Path))
                if (raw.Seq > afterSeq) yield return raw.Decode();
        }
    }

    /// <summary>The first record the journal still holds (LastSeq + 1 when it holds none): older ones were trimmed.</summary>
    public long FirstSeq
    {
        get
        {
            var segments = Segments();
            return segments.Count == 0 ? LastSeq + 1 : segments[0].FirstSeq;
        }
    }

    /// <summary>Counts segment rotations (the writer checks for trimming after one).</summary>
    public long Rotations { get; private set; }

    /// <summary>
    /// Deletes the oldest whole segments whose records are all at or below
    /// <paramref name="neededAfter"/>, as long as the segments left hold at least
    /// <paramref name="retainBytes"/> (a replica that was away resyncs from them). The segment
    /// being written is never deleted. Returns how many were.
    /// </summary>
    public int Trim(long neededAfter, long retainBytes)
    {
        var segments = Segments();
        var sizes = segments.Select(s => new FileInfo(s.Path).Length).ToList();
        var total = sizes.Sum();
        var deleted = 0;
        for (var i = 0; i + 1 < segments.Count; i++)
        {
            var lastOfSegment = segments[i + 1].FirstSeq - 1;
            if (lastOfSegment > neededAfter || total - sizes[i] < retainBytes) break;
            File.Delete(segments[i].Path);
            total -= sizes[i];
            deleted++;
        }
        if (deleted > 0) FileSystem.FsyncDirectory(_dir);
        return deleted;
    }

    /// <summary>
    /// Replaces a (closed) journal by an empty one that continues after <paramref name="seq"/>:
    /// for a copy installed from a snapshot taken at that record.
    /// </summary>
    public static void Reset(string dir, long seq)
    {
        if (System.IO.Directory.Exists(dir)) System.IO.Directory.Delete(dir, recursive: true);
        System.IO.Directory.CreateDirectory(dir);
        using (var f = new FileStream(Path.Combine(dir, $"{seq + 1:D20}.log"), FileMode.CreateNew, FileAccess.Write)) f.Flush(flushToDisk: true);
        FileSystem.FsyncDirectory(dir);
    }

    /// <summary>Drops every record after <paramref name="seq"/> (the journal must not be open).</summary>
    public static void TruncateAfter(string dir, long seq)
    {
        var journal = new Journal(dir, long.MaxValue);
        foreach (var (first, path) in journal.Segments())
        {
            if (first > seq)
            {
                File.Delete(path);
                continue;
            }
            long keep = 0;
            foreach (var raw in RawRecords(path))
            {
                if (raw.Seq > seq) break;
                keep = raw.End;
            }
            using var f = new FileStream(path, FileMode.Open, FileAccess.Write);
            if (f.Length == keep) continue;
            f.SetLength(keep);
            f.Flush(flushToDisk: true);
        }
        FileSystem.FsyncDirectory(dir);
    }

    private void Rotate()
    {
        _current?.Dispose();
        var path = Path.Combine(_dir, $"{LastSeq + 1:D20}.log");
        _current = new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read);
        FileSystem.FsyncDirectory(_dir);
        Rotations++;
    }

    private List<(long FirstSeq, string Path)> Segments()
    {
        var list = new List<(long, string)>();
        foreach (var path in System.IO.Directory.EnumerateFiles(_dir, "*.log"))
            if (long.TryParse(Path.GetFileNameWithoutExtension(path), out var first)) list.Add((first, path));
        list.Sort((a, b) => a.Item1.CompareTo(b.Item1));
        return list;
    }

    /// <summary>The last intact record's sequence and where it ends; records are checked, not decoded.</summary>
    private static (long LastSeq, long ValidLength) ScanSegment(string path)
    {
        long lastSeq = 0, valid = 0;
        foreach (var raw in RawRecords(path))
        {
            lastSeq = raw.Seq;
            valid = raw.End;
        }
        return (lastSeq, valid);
    }

    private readonly record struct RawRecord(long Seq, JournalOpType Type, byte[] Payload, long End)
    {
        public JournalRecord Decode()
        {
            using var reader = new BinaryReader(new MemoryStream(Payload, 9, Payload.Length - 9, writable: false));
            return new JournalRecord(Seq, JournalOp.Read(Type, reader));
        }
    }

    /// <summary>The records of a segment whose length and CRC check out, up to the first that does not.</summary>
    private static IEnumerable<RawRecord> RawRecords(string path)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1 << 16);
        var header = new byte[HeaderSize];
        while (true)
        {
            if (file.ReadAtLeast(header, HeaderSize, throwOnEndOfStream: false) < HeaderSize) yield break;
            var length = BinaryPrimitives.ReadUInt32LittleEndian(header);
            var crc = BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(4));
            if (length > MaxRecordBytes) yield break;
            var payload = new byte[9 + length];
            header.AsSpan(8, 9).CopyTo(payload);
            if (file.ReadAtLeast(payload.AsSpan(9), (int)length, throwOnEndOfStream: false) < length) yield break;
            if (Crc32.HashToUInt32(payload) != crc) yield break;
            yield return new RawRecord(BinaryPrimitives.ReadInt64LittleEndian(payload), (JournalOpType)payload[8], payload, file.Position);
        }
    }

    public void Dispose() => _current?.Dispose();
}
