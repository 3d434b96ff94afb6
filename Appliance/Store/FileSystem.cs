using System.Runtime.InteropServices;

namespace Appliance.Store;

/// <summary>Durability helpers: a file's bytes are durable after fsync, its name after fsync of the directory.</summary>
internal static partial class FileSystem
{
    /// <summary>
    /// Writes a whole file and fsyncs it. Used for immutable message files: their names are
    /// unique, and the journal carries the same bytes, so a name lost in a crash is restored by
    /// the journal replay rather than by an extra directory fsync per message.
    /// </summary>
    public static async Task WriteDurableAsync(string path, ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        await using var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1, FileOptions.Asynchronous);
        await file.WriteAsync(data, ct);
        file.Flush(flushToDisk: true);
    }

    public static void FsyncDirectory(string dir)
    {
        if (!OperatingSystem.IsLinux()) return;
        var fd = open(dir, 0 /* O_RDONLY */);
        if (fd < 0) return;
        try { fsync(fd); }
        finally { close(fd); }
    }

    /// <summary>
    /// Makes every file written under <paramref name="dir"/> durable with one syncfs(2) of its
    /// file system, instead of one fsync per file (a replica applying a catch-up batch of
    /// thousands of messages). Falls back to nothing off Linux (dev machines).
    /// </summary>
    public static void SyncFileSystem(string dir)
    {
        if (!OperatingSystem.IsLinux()) return;
        var fd = open(dir, 0 /* O_RDONLY */);
        if (fd < 0) throw new IOException($"cannot open {dir} to sync it");
        try
        {
            if (syncfs(fd) != 0) throw new IOException($"syncfs failed on {dir} (errno {Marshal.GetLastPInvokeError()})");
        }
        finally { close(fd); }
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int syncfs(int fd);

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int open(string path, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fsync(int fd);

    [LibraryImport("libc")]
    private static partial int close(int fd);
}
