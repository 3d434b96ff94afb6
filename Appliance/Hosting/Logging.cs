using NLog;
using NLog.Config;
using NLog.Targets;

namespace Appliance.Hosting;

/// <summary>NLog set up in code (no XML, AOT safe): console plus a daily rolling file under data/logs.</summary>
public static class Logging
{
    private const string Layout = "${longdate} ${level:uppercase=true:padding=-5} ${logger:shortName=true}: ${message}${onexception:inner= ${exception:format=tostring}}";

    public static void Configure(string dataDir, bool console)
    {
        var config = new LoggingConfiguration();
        var file = new FileTarget("file")
        {
            FileName = Path.Combine(Path.GetFullPath(dataDir), "logs", "appliance.log"),
            ArchiveSuffixFormat = "_{1:yyyyMMdd}",
            ArchiveEvery = FileArchivePeriod.Day,
            MaxArchiveFiles = 30,
            Layout = Layout,
            KeepFileOpen = true,
        };
        config.AddRule(LogLevel.Info, LogLevel.Fatal, file);
        if (console) config.AddRule(LogLevel.Info, LogLevel.Fatal, new ConsoleTarget("console") { Layout = Layout });
        LogManager.Configuration = config;
    }
}
