#!/usr/bin/env pwsh
# Build tasks for the appliance. Run: dotnet tool restore && dotnet pwsh build.ps1 <task>
#
#   publish   native-AOT publish to artifacts/publish; fails on any warning
#   bench-provisioning  only bench's provisioning figures
#   bench-relay  only bench's relay figure (outbound relaying to a smart host)
#   lab       build the two-node lab in network namespaces and start a pair in it (lab-down)
#   ha-suite  run the HA fault scenarios in the lab, one line per scenario
#   firmware-check  (root) the firmware/ checks CI runs: firewall, VPN, scripts, and
#             install.sh into debootstrapped roots forming a pair in namespaces
#   bench     publish, then measure against the appliance and a Postfix+Dovecot peer;
#             prints one line per figure: bench NAME VALUE UNIT peer=VALUE ratio=R
#             (SMTP figures with bench/SmtpLoad, IMAP figures with bench/ImapLoad, the relay
#             figure with bench/SmtpLoad into bench/SmtpSink as the smart host)
#
# Implementation notes
# - stdout carries results only (the publish size line, the bench lines); progress and
#   tool output go to stderr so `build.ps1 bench | grep '^bench '` is all one needs.
# - Everything bench starts is stopped in finally blocks (appliance by pid, the peer
#   through bench/peer-postfix-dovecot.sh down) and its temp directories removed.
# - A figure that could not be measured prints as `-` and makes the exit code 1; the
#   other figures are still measured, so a broken appliance still shows the peer.
[CmdletBinding()]
param(
    [Parameter(Position = 0)][string]$Task = '',
    [int]$Messages = 2000,
    [int]$Sessions = 10,
    [int]$Mailboxes = 10,
    [int]$MessageSize = 4096,
    # IMAP figures: commands of the mixed run (over -Sessions sessions), idle connections,
    # size of the folder searched.
    [int]$ImapCommands = 30000,
    [int]$IdleConnections = 500,
    [int]$SearchMessages = 50000,
    # Provisioning figures: mailboxes of the bulk call (migrated hashes), and of the plain-password run.
    [int]$ProvisionMailboxes = 10000,
    [int]$ProvisionPlain = 200,
    # bench, lab, ha-suite, firmware-check: use this executable (and, for firmware-check, the
    # libe_sqlite3.so beside it) instead of publishing artifacts/publish/appliance.
    [string]$Exe = '',
    # ha-suite: comma-separated scenario names (default: all).
    [string]$Scenarios = ''
)

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'
$Root = $PSScriptRoot
$PublishDir = Join-Path $Root 'artifacts/publish'
$PublishedExe = Join-Path $PublishDir 'appliance'
$SkipPublish = $Exe -ne ''
if (-not $SkipPublish) { $Exe = $PublishedExe } else { $Exe = (Resolve-Path $Exe).Path }
$LoadDir = Join-Path $Root 'artifacts/bench/SmtpLoad'
$ImapLoadDir = Join-Path $Root 'artifacts/bench/ImapLoad'
$SinkDir = Join-Path $Root 'artifacts/bench/SmtpSink'
$PeerScript = Join-Path $Root 'bench/peer-postfix-dovecot.sh'
$Inv = [Globalization.CultureInfo]::InvariantCulture

# Ports of the bench instances (spare ports, loopback only; see DESIGN.md §1 for the defaults).
$AppPorts = [ordered]@{
    Smtp = 22525; Submission = 22587; Smtps = 22465; Imap = 22143; Imaps = 22993
    Pop3 = 22110; Pop3s = 22995; ManageSieve = 22190; Http = 28080; Https = -1
}
$PeerSmtpPort = 12525
$PeerImapPort = 12143
# bench/SmtpSink, the smart host of relay_throughput (SMTP; control: counts, wait for N).
$SinkPort = 12625
$SinkControlPort = 12626
# The relay figure's recipients u1..uN: a domain neither side hosts.
$RelayDomain = 'remote.bench'
$BenchDomain = 'bench.test'
# Same password for the appliance's mailboxes and the peer's (bench/peer-postfix-dovecot.sh).
$BenchPassword = 'bench-password'
# The mailbox holding the search corpus (created on both; filled over SMTP on the appliance,
# written into its maildir on the peer, where Postfix does not know it).
$SearchMailbox = "big@$BenchDomain"
$SearchFigure = "imap_search_text_$([int]($SearchMessages / 1000))k"
$WebmailFigure = "webmail_open_$([int]($SearchMessages / 1000))k"

function Write-Log([string]$Message) { [Console]::Error.WriteLine($Message) }
function Write-Result([string]$Line) { [Console]::Out.WriteLine($Line) }

function Test-Root { return (& id -u) -eq '0' }

function Install-NativeToolchain {
    $haveClang = $null -ne (Get-Command clang -ErrorAction SilentlyContinue)
    $haveZlib = Test-Path '/usr/include/zlib.h'
    if ($haveClang -and $haveZlib) { return }
    if (-not (Test-Root) -or -not (Get-Command apt-get -ErrorAction SilentlyContinue)) {
        throw 'native AOT needs clang and zlib1g-dev; install them (apt-get install clang zlib1g-dev)'
    }
    Write-Log 'installing clang zlib1g-dev'
    $env:DEBIAN_FRONTEND = 'noninteractive'
    & apt-get update -q 2>&1 | ForEach-Object { Write-Log "  $_" }
    & apt-get install -y -q clang zlib1g-dev 2>&1 | ForEach-Object { Write-Log "  $_" }
    if ($LASTEXITCODE -ne 0) { throw 'apt-get install clang zlib1g-dev failed' }
}

function Invoke-Publish {
    Install-NativeToolchain
    # Force the ILC step to run so its trim/AOT warnings are printed on every publish.
    Remove-Item -Recurse -Force -ErrorAction SilentlyContinue (Join-Path $Root 'Appliance/obj/Release/net10.0/linux-x64/native')
    Write-Log 'dotnet publish Appliance/Appliance.csproj -c Release -r linux-x64 -o artifacts/publish'
    $output = & dotnet publish (Join-Path $Root 'Appliance/Appliance.csproj') -c Release -r linux-x64 -o $PublishDir -tl:off -nologo 2>&1 |
        ForEach-Object { "$_" }
    $code = $LASTEXITCODE
    $output | ForEach-Object { Write-Log "  $_" }
    if ($code -ne 0) { throw "dotnet publish failed (exit $code)" }
    # MSBuild canonical warnings (": warning IL2026:", "warning CS8618") and ILC's "Trim analysis warning".
    $warnings = @($output | Where-Object { $_ -match '(?i)\bwarning\s*:|\bwarning\s+[A-Z]{2,}\d+' } | Sort-Object -Unique)
    if ($warnings.Count -gt 0) {
        $warnings | ForEach-Object { Write-Log "WARNING: $_" }
        throw "dotnet publish produced $($warnings.Count) warning(s)"
    }
    if (-not (Test-Path $PublishedExe)) { throw "publish did not produce $PublishedExe" }
    $mb = (Get-Item $PublishedExe).Length / 1MB
    return [string]::Format($Inv, 'publish artifacts/publish/appliance {0:F1} MB', $mb)
}

function Build-LoadTool([string]$Name, [string]$OutDir) {
    Write-Log "building bench/$Name"
    $output = & dotnet build (Join-Path $Root "bench/$Name/$Name.csproj") -c Release -o $OutDir -tl:off -nologo -v q 2>&1 | ForEach-Object { "$_" }
    if ($LASTEXITCODE -ne 0) {
        $output | ForEach-Object { Write-Log "  $_" }
        throw "building bench/$Name failed"
    }
}

# Runs the load generator; returns its key=value result line as a hashtable.
function Invoke-SmtpLoad([int]$Port, [string[]]$Extra = @()) {
    $loadArgs = @((Join-Path $LoadDir 'SmtpLoad.dll'), '--port', $Port, '--sessions', $Sessions,
        '--messages', $Messages, '--size', $MessageSize, '--domain', $BenchDomain, '--mailboxes', $Mailboxes) + $Extra
    $lines = & dotnet @loadArgs 2>&1 | ForEach-Object { "$_" }
    $code = $LASTEXITCODE
    $lines | ForEach-Object { Write-Log "  smtpload: $_" }
    if ($code -ne 0) { throw "SmtpLoad against port $Port failed (exit $code)" }
    $result = @{}
    foreach ($pair in (($lines | Where-Object { $_ -match '^sent=' } | Select-Object -Last 1) -split ' ')) {
        $k, $v = $pair -split '=', 2
        $result[$k] = $v
    }
    if (-not $result.ContainsKey('rate')) { throw 'SmtpLoad printed no result line' }
    return $result
}

# Runs `ImapLoad MODE ...`; returns its key=value result line (mode=...) as a hashtable.
# 180 s bounds each run, so a server that hangs costs minutes, not the whole bench.
function Invoke-ImapLoad([string]$Mode, [string[]]$ToolArgs) {
    $loadArgs = @((Join-Path $ImapLoadDir 'ImapLoad.dll'), $Mode, '--domain', $BenchDomain, '--password', $BenchPassword,
        '--timeout', 180) + $ToolArgs
    $lines = & dotnet @loadArgs 2>&1 | ForEach-Object { "$_" }
    $code = $LASTEXITCODE
    $lines | ForEach-Object { Write-Log "  imapload: $_" }
    if ($code -ne 0) { throw "ImapLoad $Mode failed (exit $code)" }
    $result = @{}
    foreach ($pair in (($lines | Where-Object { $_ -match '^mode=' } | Select-Object -Last 1) -split ' ')) {
        $k, $v = $pair -split '=', 2
        $result[$k] = $v
    }
    if (-not $result.ContainsKey('mode')) { throw "ImapLoad $Mode printed no result line" }
    return $result
}

# The IMAP figures against one server (appliance or peer) whose mailboxes u1..uN hold the
# smtp_ingest messages. $Fill loads the search corpus into $SearchMailbox. Each figure is
# measured on its own: one that fails is logged, left out of $Results, and flagged. Idle
# memory comes first, while the server has seen no IMAP traffic since it started.
function Measure-Imap([string]$Who, [hashtable]$Results, [int]$Port, [int[]]$Pids, [scriptblock]$Fill) {
    $common = @('--port', $Port, '--users', $Mailboxes)
    try {
        Write-Log "$($Who): $IdleConnections idle IMAP connections (LOGIN, SELECT INBOX, IDLE)"
        $r = Invoke-ImapLoad 'idle' ($common + @('--connections', $IdleConnections, '--pid', ($Pids -join ',')))
        $Results.imap_idle_conn_mem = [double]::Parse($r.kb_per_connection, $Inv)
    }
    catch { Write-Log "$($Who): imap_idle_conn_mem: $($_.Exception.Message)"; $Results.failed = $true }
    try {
        Write-Log "$($Who): IMAP mixed client load, $ImapCommands commands over $Sessions sessions"
        $r = Invoke-ImapLoad 'mixed' ($common + @('--sessions', $Sessions, '--commands', $ImapCommands))
        $Results.imap_mixed = [double]::Parse($r.rate, $Inv)
    }
    catch { Write-Log "$($Who): imap_mixed: $($_.Exception.Message)"; $Results.failed = $true }
    try {
        Write-Log "$($Who): loading $SearchMessages messages into $SearchMailbox"
        & $Fill
        Write-Log "$($Who): UID SEARCH TEXT over $SearchMessages messages"
        $r = Invoke-ImapLoad 'search' ($common + @('--user', $SearchMailbox, '--messages', $SearchMessages))
        $Results[$SearchFigure] = [double]::Parse($r.median_ms, $Inv)
    }
    catch { Write-Log "$($Who): $($SearchFigure): $($_.Exception.Message)"; $Results.failed = $true }
}

# webmail_open_50k: the server time (its Server-Timing header) of opening the search corpus's
# 50,000-message INBOX in the webmail: the first page of 50 by date, newest first, as the page
# asks for it after sign-in. Median of 5 after one warm-up; the answer must count every message.
function Measure-Webmail([hashtable]$Results) {
    $name = $WebmailFigure
    try {
        $base = "http://127.0.0.1:$($AppPorts.Http)/webmail/api"
        $login = @{ address = $SearchMailbox; password = $BenchPassword } | ConvertTo-Json
        $null = Invoke-WebRequest -Method Post -Uri "$base/session" -Body $login -ContentType 'application/json' -SessionVariable web
        $times = @()
        for ($i = 0; $i -lt 6; $i++) {
            $r = Invoke-WebRequest -Uri "$base/messages?folder=INBOX&offset=0&limit=50&sort=date&order=desc" -WebSession $web
            $total = ($r.Content | ConvertFrom-Json).total
            if ($total -ne $SearchMessages) { throw "the INBOX lists $total messages, not $SearchMessages" }
            $timing = [string]($r.Headers['Server-Timing'] | Select-Object -First 1)
            if ($timing -notmatch 'dur=([0-9.]+)') { throw "no Server-Timing in the answer ($timing)" }
            if ($i -gt 0) { $times += [double]::Parse($Matches[1], $Inv) }
        }
        Write-Log ('appliance: webmail INBOX first page, server ms: ' + (($times | ForEach-Object { $_.ToString('F1', $Inv) }) -join ' '))
        $Results[$name] = ($times | Sort-Object)[2]
    }
    catch { Write-Log "appliance: $($name): $($_.Exception.Message)"; $Results.failed = $true }
}

# True when a connection to the port is accepted and an IMAP greeting (* OK) arrives,
# trying for up to 5 s (the IMAP listener may come up after the SMTP one).
function Test-ImapGreeting([int]$Port) {
    $sw = [Diagnostics.Stopwatch]::StartNew()
    while ($sw.ElapsedMilliseconds -lt 5000) {
        $client = [Net.Sockets.TcpClient]::new()
        try {
            $client.Connect('127.0.0.1', $Port)
            $stream = $client.GetStream()
            $stream.ReadTimeout = 5000
            $line = [IO.StreamReader]::new($stream, [Text.Encoding]::ASCII).ReadLine()
            if ("$line".StartsWith('* OK')) { return $true }
        }
        catch [Net.Sockets.SocketException], [IO.IOException] { }
        finally { $client.Dispose() }
        Start-Sleep -Milliseconds 100
    }
    return $false
}

function Assert-PortFree([int]$Port) {
    $client = [Net.Sockets.TcpClient]::new()
    try {
        $client.Connect('127.0.0.1', $Port)
        throw "port $Port on 127.0.0.1 is already in use"
    }
    catch [Net.Sockets.SocketException] { }
    finally { $client.Dispose() }
}

# True when a connection to the port is accepted and a 220 banner arrives.
function Test-SmtpBanner([int]$Port) {
    $client = [Net.Sockets.TcpClient]::new()
    try {
        $client.NoDelay = $true
        $client.Connect('127.0.0.1', $Port)
        $stream = $client.GetStream()
        $stream.ReadTimeout = 2000
        $buffer = [byte[]]::new(512)
        $text = ''
        while ($text -notmatch "`n") {
            $n = $stream.Read($buffer, 0, $buffer.Length)
            if ($n -le 0) { return $false }
            $text += [Text.Encoding]::ASCII.GetString($buffer, 0, $n)
        }
        return $text.StartsWith('220')
    }
    catch [Net.Sockets.SocketException], [IO.IOException] { return $false }
    finally { $client.Dispose() }
}

# Starts `appliance run --data DIR` (output appended to LogFile) and waits for the SMTP
# banner. Returns the process and the milliseconds from Process.Start to the banner.
function Start-Appliance([string]$DataDir, [string]$LogFile, [int]$TimeoutMs = 30000) {
    $psi = [Diagnostics.ProcessStartInfo]::new('/bin/sh')
    # exec keeps the pid: the process we time and stop is the appliance itself.
    foreach ($a in @('-c', 'exec "$0" "$@" >>"$APPLIANCE_BENCH_LOG" 2>&1', $Exe, 'run', '--data', $DataDir)) {
        $psi.ArgumentList.Add($a)
    }
    $psi.UseShellExecute = $false
    $psi.Environment['APPLIANCE_BENCH_LOG'] = $LogFile
    $sw = [Diagnostics.Stopwatch]::StartNew()
    $proc = [Diagnostics.Process]::Start($psi)
    while (-not (Test-SmtpBanner $AppPorts.Smtp)) {
        if ($proc.HasExited) {
            throw "appliance exited with code $($proc.ExitCode) before its SMTP banner; log: $(Get-LogTail $LogFile)"
        }
        if ($sw.ElapsedMilliseconds -gt $TimeoutMs) {
            Stop-Appliance $proc
            throw "no SMTP banner on 127.0.0.1:$($AppPorts.Smtp) within $($TimeoutMs / 1000) s; log: $(Get-LogTail $LogFile)"
        }
        Start-Sleep -Milliseconds 2
    }
    $ms = $sw.Elapsed.TotalMilliseconds
    return [pscustomobject]@{ Process = $proc; Ms = $ms }
}

# The addresses SMTP does not accept (yet) as recipients: all of them when it cannot be asked.
function Get-RejectedRecipients([int]$Port, [string[]]$Addresses) {
    $client = [Net.Sockets.TcpClient]::new()
    try {
        $client.Connect('127.0.0.1', $Port)
        $stream = $client.GetStream()
        $stream.ReadTimeout = 5000
        $reader = [IO.StreamReader]::new($stream, [Text.Encoding]::ASCII)
        $writer = [IO.StreamWriter]::new($stream, [Text.Encoding]::ASCII)
        $writer.NewLine = "`r`n"
        $writer.AutoFlush = $true
        $reply = {
            do { $line = $reader.ReadLine() } while ($null -ne $line -and $line.Length -gt 3 -and $line[3] -eq '-')
            return $line
        }
        $null = & $reply
        $writer.WriteLine('EHLO bench.check'); $null = & $reply
        $writer.WriteLine('MAIL FROM:<check@load.test>'); $null = & $reply
        $rejected = @($Addresses | Where-Object {
                $writer.WriteLine("RCPT TO:<$_>")
                -not "$(& $reply)".StartsWith('250')
            })
        $writer.WriteLine('QUIT')
        return ,$rejected
    }
    catch [Net.Sockets.SocketException], [IO.IOException] { return ,$Addresses }
    finally { $client.Dispose() }
}

# Provisioning is applied by the node's agent (DESIGN.md §4): wait until SMTP accepts every
# bench recipient, so the ingest run does not start with 550s.
function Wait-Recipients([int]$Port, [int]$TimeoutMs = 15000) {
    $sw = [Diagnostics.Stopwatch]::StartNew()
    $pending = @(1..$Mailboxes | ForEach-Object { "u$_@$BenchDomain" })
    $warned = $false
    while ($true) {
        $pending = Get-RejectedRecipients $Port $pending
        if ($pending.Count -eq 0) { return }
        if ($sw.ElapsedMilliseconds -gt $TimeoutMs) {
            throw "SMTP still rejects $($pending.Count) bench mailbox(es) $($TimeoutMs / 1000) s after provisioning (e.g. $($pending[0]))"
        }
        if (-not $warned) { Write-Log "appliance: $($pending.Count) mailbox(es) not accepted by SMTP yet; waiting"; $warned = $true }
        Start-Sleep -Milliseconds 100
    }
}

function Stop-Appliance([Diagnostics.Process]$Proc) {
    if ($null -eq $Proc -or $Proc.HasExited) { return }
    & kill -s TERM $Proc.Id 2>$null
    if (-not $Proc.WaitForExit(15000)) {
        Write-Log "appliance pid $($Proc.Id) ignored SIGTERM for 15 s; killing it"
        $Proc.Kill()
        $null = $Proc.WaitForExit(5000)
    }
}

function Get-LogTail([string]$LogFile) {
    if (-not (Test-Path $LogFile)) { return '(no output)' }
    return ((Get-Content $LogFile -Tail 15) -join "`n")
}

function Get-RssMB([int]$ProcessId) {
    $line = Get-Content "/proc/$ProcessId/status" | Where-Object { $_ -match '^VmRSS:' }
    return [double](($line -split '\s+')[1]) / 1024
}

function Invoke-ApplianceCli([string[]]$CliArgs, [string]$StdIn = '') {
    $out = if ($StdIn -ne '') { $StdIn | & $Exe @CliArgs 2>&1 } else { & $Exe @CliArgs 2>&1 }
    if ($LASTEXITCODE -ne 0) {
        throw "appliance $($CliArgs -join ' ') failed (exit $LASTEXITCODE): $($out -join ' ')"
    }
}

function New-TempDir([string]$Prefix) {
    $dir = Join-Path ([IO.Path]::GetTempPath()) ($Prefix + [IO.Path]::GetRandomFileName().Replace('.', ''))
    $null = New-Item -ItemType Directory -Path $dir
    return $dir
}

# Appliance config for the bench instance beyond the ports: room for the idle IMAP
# connections, which all come from 127.0.0.1 and go to -Mailboxes users.
$AppSettings = [ordered]@{
    Imap__MaxConnectionsPerIp   = 2 * $IdleConnections
    Imap__MaxConnectionsPerUser = 2 * $IdleConnections
}

# Appliance half: idle RSS after a fresh start, SMTP ingest, start-to-banner (median of 5
# restarts), then one more start for the IMAP figures (after the restarts, so the search
# corpus does not change what start_to_smtp measures).
# Sets the bench instance's APPLIANCE__ variables (its ports on 127.0.0.1, plus $Extra);
# returns what they were, for Restore-Environment.
function Set-BenchEnvironment([System.Collections.IDictionary]$Extra = @{}) {
    $values = [ordered]@{ 'Listen__Address' = '127.0.0.1' }
    foreach ($k in $AppPorts.Keys) { $values["Listen__$k"] = $AppPorts[$k] }
    foreach ($k in $Extra.Keys) { $values[$k] = $Extra[$k] }
    $saved = @{}
    foreach ($k in $values.Keys) {
        $name = "APPLIANCE__$k"
        $saved[$name] = [Environment]::GetEnvironmentVariable($name)
        [Environment]::SetEnvironmentVariable($name, [string]$values[$k])
    }
    return $saved
}

function Restore-Environment([hashtable]$Saved) {
    # A variable that was not set is removed: passed to .NET, PowerShell's $null becomes "", which
    # left APPLIANCE__Relay__TrustedNetworks__0 set but empty for the figures after the relay's.
    foreach ($k in $Saved.Keys) {
        if ($null -eq $Saved[$k]) { Remove-Item "Env:$k" -ErrorAction SilentlyContinue }
        else { [Environment]::SetEnvironmentVariable($k, $Saved[$k]) }
    }
}

function Measure-Appliance([hashtable]$Results) {
    $tmp = New-TempDir 'appliance-bench-'
    $data = Join-Path $tmp 'data'
    $log = Join-Path $tmp 'appliance.log'
    $saved = Set-BenchEnvironment $AppSettings
    $app = $null
    try {
        foreach ($p in $AppPorts.Values) { if ($p -gt 0) { Assert-PortFree $p } }
        Write-Log "appliance: starting with a fresh data directory $data"
        $app = Start-Appliance $data $log
        Write-Log ([string]::Format($Inv, 'appliance: first start (fresh data dir) answered after {0:F0} ms', $app.Ms))
        Start-Sleep -Seconds 3
        $Results.idle_rss = Get-RssMB $app.Process.Id

        Write-Log "appliance: creating $BenchDomain and $Mailboxes mailboxes through the CLI"
        Invoke-ApplianceCli @('domain', 'add', $BenchDomain, '--data', $data)
        for ($i = 1; $i -le $Mailboxes; $i++) {
            Invoke-ApplianceCli @('mailbox', 'add', "u$i@$BenchDomain", '--password-stdin', '--data', $data) $BenchPassword
        }
        Invoke-ApplianceCli @('mailbox', 'add', $SearchMailbox, '--password-stdin', '--data', $data) $BenchPassword
        Wait-Recipients $AppPorts.Smtp
        Write-Log "appliance: sending $Messages messages over $Sessions sessions"
        $r = Invoke-SmtpLoad $AppPorts.Smtp
        $Results.smtp_ingest = [double]::Parse($r.rate, $Inv)
        Stop-Appliance $app.Process
        $app = $null

        $times = @()
        for ($i = 0; $i -lt 5; $i++) {
            $app = Start-Appliance $data $log
            $times += $app.Ms
            Stop-Appliance $app.Process
            $app = $null
        }
        Write-Log ('appliance: restarts to banner (ms): ' + (($times | ForEach-Object { $_.ToString('F0', $Inv) }) -join ' '))
        $Results.start_to_smtp = ($times | Sort-Object)[2]

        $app = Start-Appliance $data $log
        if (Test-ImapGreeting $AppPorts.Imap) {
            # The corpus arrives over SMTP (250 = delivered); `ImapLoad append` would do it
            # over IMAP instead. SmtpLoad takes the last value of a repeated option; 50,000
            # messages need more than its default 300 s on a busy machine.
            $fill = {
                $null = Invoke-SmtpLoad $AppPorts.Smtp @('--messages', $SearchMessages, '--corpus', 'yes', '--to', $SearchMailbox, '--timeout', 900)
            }
            Measure-Imap 'appliance' $Results $AppPorts.Imap @($app.Process.Id) $fill
            Measure-Webmail $Results
        }
        else {
            Write-Log "appliance: no IMAP greeting on 127.0.0.1:$($AppPorts.Imap); IMAP figures not measured"
            $Results.failed = $true
        }
    }
    catch {
        Write-Log "appliance: $($_.Exception.Message)"
        $Results.failed = $true
    }
    finally {
        if ($null -ne $app) { Stop-Appliance $app.Process }
        Restore-Environment $saved
        Remove-Item -Recurse -Force -ErrorAction SilentlyContinue $tmp
    }
}

# Peer half: Postfix (smtpd on $PeerSmtpPort) -> LMTP -> Dovecot maildirs, see bench/peer-postfix-dovecot.sh.
function Measure-Peer([hashtable]$Results) {
    $work = New-TempDir 'peer-bench-'
    try {
        & bash $PeerScript install
        if ($LASTEXITCODE -ne 0) { throw 'installing postfix/dovecot failed' }
        Assert-PortFree $PeerSmtpPort
        Write-Log "peer: starting Postfix on 127.0.0.1:$PeerSmtpPort and Dovecot LMTP in $work"
        Assert-PortFree $PeerImapPort
        & bash $PeerScript up $work $PeerSmtpPort $BenchDomain $Mailboxes $PeerImapPort
        if ($LASTEXITCODE -ne 0) { throw 'peer did not start' }
        Start-Sleep -Seconds 3
        $Results.idle_rss = [double](& bash $PeerScript rss $work) / 1024
        $maildir = & bash $PeerScript maildir $work
        Write-Log "peer: sending $Messages messages over $Sessions sessions, waiting for delivery into Dovecot"
        $r = Invoke-SmtpLoad $PeerSmtpPort @('--wait-maildir', $maildir, '--expect', $Messages)
        $Results.smtp_ingest = [double]::Parse($r.rate, $Inv)

        # Dovecot serves IMAP from its own maildirs; the corpus is written there directly
        # (LF line ends, as an MDA writes them) and handed to the mail user.
        $dovecotPid = [int](& bash $PeerScript dovecot-pid $work)
        $fill = {
            $local, $domain = $SearchMailbox -split '@', 2
            $userHome = Join-Path $maildir "$domain/$local"
            Invoke-ImapLoad 'fill-maildir' @('--dir', (Join-Path $userHome 'Maildir'), '--user', $SearchMailbox, '--messages', $SearchMessages) | Out-Null
            & chown -R mail:mail $userHome
            if ($LASTEXITCODE -ne 0) { throw "chown -R mail:mail $userHome failed" }
        }
        Measure-Imap 'peer' $Results $PeerImapPort @($dovecotPid) $fill
    }
    catch {
        Write-Log "peer: $($_.Exception.Message)"
        $Results.failed = $true
    }
    finally {
        & bash $PeerScript down $work
        Remove-Item -Recurse -Force -ErrorAction SilentlyContinue $work
    }
}

# ---- relay_throughput: outbound relaying to a smart host (bench/SmtpSink) ----

# Starts bench/SmtpSink (output appended to LogFile) and waits for its banner.
function Start-Sink([string]$LogFile) {
    Assert-PortFree $SinkPort
    Assert-PortFree $SinkControlPort
    $psi = [Diagnostics.ProcessStartInfo]::new('/bin/sh')
    foreach ($a in @('-c', 'exec "$0" "$@" >>"$APPLIANCE_BENCH_LOG" 2>&1', 'dotnet', (Join-Path $SinkDir 'SmtpSink.dll'),
            '--port', $SinkPort, '--control', $SinkControlPort)) {
        $psi.ArgumentList.Add([string]$a)
    }
    $psi.UseShellExecute = $false
    $psi.Environment['APPLIANCE_BENCH_LOG'] = $LogFile
    $sw = [Diagnostics.Stopwatch]::StartNew()
    $proc = [Diagnostics.Process]::Start($psi)
    while (-not (Test-SmtpBanner $SinkPort)) {
        if ($proc.HasExited) { throw "SmtpSink exited with code $($proc.ExitCode); log: $(Get-LogTail $LogFile)" }
        if ($sw.ElapsedMilliseconds -gt 30000) {
            Stop-Sink $proc
            throw "no banner from SmtpSink on 127.0.0.1:$SinkPort within 30 s; log: $(Get-LogTail $LogFile)"
        }
        Start-Sleep -Milliseconds 50
    }
    return $proc
}

function Stop-Sink([Diagnostics.Process]$Proc) {
    if ($null -eq $Proc -or $Proc.HasExited) { return }
    & kill -s TERM $Proc.Id 2>$null
    if (-not $Proc.WaitForExit(5000)) {
        $Proc.Kill()
        $null = $Proc.WaitForExit(5000)
    }
}

# The sink's counters now: messages, unique (distinct Message-IDs), duplicates, recipients, sessions.
function Get-SinkCounts {
    $client = [Net.Sockets.TcpClient]::new()
    try {
        $client.Connect('127.0.0.1', $SinkControlPort)
        $stream = $client.GetStream()
        $stream.ReadTimeout = 5000
        $request = [Text.Encoding]::ASCII.GetBytes("count`n")
        $stream.Write($request, 0, $request.Length)
        $line = [IO.StreamReader]::new($stream, [Text.Encoding]::ASCII).ReadLine()
        $counts = @{}
        foreach ($pair in "$line" -split ' ') {
            $k, $v = $pair -split '=', 2
            if ($null -ne $v) { $counts[$k] = [long]$v }
        }
        if (-not $counts.ContainsKey('unique')) { throw "SmtpSink answered '$line' to count" }
        return $counts
    }
    finally { $client.Dispose() }
}

# The relay's own log: delivery attempts by status (sent, deferred, bounced); $Pattern names it (?<status>…).
function Get-RelayLogStatus([string]$LogFile, [string]$Pattern) {
    $status = @{ sent = 0; deferred = 0; bounced = 0 }
    if (Test-Path $LogFile) {
        foreach ($m in (Select-String -Path $LogFile -Pattern $Pattern)) { $status[$m.Matches[0].Groups['status'].Value]++ }
    }
    return $status
}

# One relay run against the server on $Port (trusted client, mail for $RelayDomain): SmtpLoad
# times from its first connect until the sink holds all $Messages; then, 2 s later, the sink
# must hold exactly those (none lost; a duplicate, possible with at-least-once delivery, is
# logged) and the relay's log ($LogFile, $Pattern) must show each of them sent. Returns msgs/s.
function Invoke-RelayRun([string]$Who, [int]$Port, [string]$LogFile, [string]$Pattern) {
    Write-Log "$($Who): relaying $Messages messages for u1..u$Mailboxes@$RelayDomain over $Sessions sessions, until the sink has them all"
    $r = Invoke-SmtpLoad $Port @('--domain', $RelayDomain, '--wait-sink', "127.0.0.1:$SinkControlPort", '--expect', $Messages, '--wait-timeout', 900)
    Start-Sleep -Seconds 2
    $c = Get-SinkCounts
    $s = Get-RelayLogStatus $LogFile $Pattern
    Write-Log ("{0}: sink messages={1} unique={2} duplicates={3} sessions={4}; relay log sent={5} deferred={6} bounced={7}" -f
        $Who, $c.messages, $c.unique, $c.duplicates, $c.sessions, $s.sent, $s.deferred, $s.bounced)
    if ($c.unique -ne $Messages) { throw "the sink holds $($c.unique) distinct messages, not $Messages" }
    if ($c.duplicates -gt 0) { Write-Log "$($Who): note: $($c.duplicates) message(s) reached the sink twice" }
    if ($s.sent -lt $Messages) { throw "the relay's log shows $($s.sent) messages sent, not $Messages ($LogFile)" }
    return [double]::Parse($r.rate, $Inv)
}

# Appliance half of relay_throughput: a fresh node hosting $BenchDomain, its smart host the sink,
# 127.0.0.0/8 a trusted network (relays on the MX port without AUTH, as Postfix's mynetworks).
function Measure-RelayAppliance([hashtable]$Results) {
    $tmp = New-TempDir 'appliance-relay-'
    $data = Join-Path $tmp 'data'
    $log = Join-Path $tmp 'appliance.log'
    $saved = Set-BenchEnvironment ([ordered]@{ 'Relay__SmartHost' = "127.0.0.1:$SinkPort"; 'Relay__TrustedNetworks__0' = '127.0.0.0/8' })
    $sink = $null
    $app = $null
    try {
        foreach ($p in $AppPorts.Values) { if ($p -gt 0) { Assert-PortFree $p } }
        $sink = Start-Sink (Join-Path $tmp 'sink.log')
        Write-Log "appliance: starting with a fresh data directory $data, smart host 127.0.0.1:$SinkPort (SmtpSink)"
        $app = Start-Appliance $data $log
        Invoke-ApplianceCli @('domain', 'add', $BenchDomain, '--data', $data)
        Start-Sleep -Seconds 3
        if ((Get-RejectedRecipients $AppPorts.Smtp @("u1@$RelayDomain")).Count -gt 0) {
            throw "SMTP on 127.0.0.1:$($AppPorts.Smtp) does not relay for 127.0.0.1 (RCPT TO:<u1@$RelayDomain> refused)"
        }
        $Results.relay_throughput = Invoke-RelayRun 'appliance' $AppPorts.Smtp (Join-Path $data 'logs/appliance.log') `
            ' relay: relay id=\S+ to=<[^>]*> relay=\S+ status=(?<status>sent|deferred|bounced) '
    }
    catch {
        Write-Log "appliance relay: $($_.Exception.Message) log: $(Get-LogTail $log)"
        $Results.failed = $true
    }
    finally {
        if ($null -ne $app) { Stop-Appliance $app.Process }
        Stop-Sink $sink
        Restore-Environment $saved
        Remove-Item -Recurse -Force -ErrorAction SilentlyContinue $tmp
    }
}

# Peer half: the bench's Postfix (bench/peer-postfix-dovecot.sh) with relayhost = the sink.
function Measure-RelayPeer([hashtable]$Results) {
    $work = New-TempDir 'peer-relay-'
    $sink = $null
    try {
        & bash $PeerScript install
        if ($LASTEXITCODE -ne 0) { throw 'installing postfix/dovecot failed' }
        Assert-PortFree $PeerSmtpPort
        Assert-PortFree $PeerImapPort
        $sink = Start-Sink (Join-Path $work 'sink.log')
        Write-Log "peer: starting Postfix on 127.0.0.1:$PeerSmtpPort with relayhost [127.0.0.1]:$SinkPort (SmtpSink)"
        & bash $PeerScript up $work $PeerSmtpPort $BenchDomain $Mailboxes $PeerImapPort "[127.0.0.1]:$SinkPort"
        if ($LASTEXITCODE -ne 0) { throw 'peer did not start' }
        Start-Sleep -Seconds 3
        $Results.relay_throughput = Invoke-RelayRun 'peer' $PeerSmtpPort (Join-Path $work 'postfix.log') `
            ' postfix/smtp\[\d+\]: \w+: to=<[^>]*>, relay=.* status=(?<status>sent|deferred|bounced) '
    }
    catch {
        Write-Log "peer relay: $($_.Exception.Message)"
        $Results.failed = $true
    }
    finally {
        & bash $PeerScript down $work
        Stop-Sink $sink
        Remove-Item -Recurse -Force -ErrorAction SilentlyContinue $work
    }
}

# Only the relay figure.
function Invoke-BenchRelay {
    if ($SkipPublish) { Write-Log "bench: using $Exe (no publish)" } else { Write-Log (Invoke-Publish) }
    Build-LoadTool 'SmtpLoad' $LoadDir
    Build-LoadTool 'SmtpSink' $SinkDir
    $app = @{}
    $peer = @{}
    Measure-RelayAppliance $app
    Measure-RelayPeer $peer
    Write-Result (Format-Figure $app $peer 'relay_throughput' 'msgs/s' 'F1')
    return $(if ($app.ContainsKey('relay_throughput') -and -not $app.ContainsKey('failed') -and -not $peer.ContainsKey('failed')) { 0 } else { 1 })
}

function Format-Figure([hashtable]$App, [hashtable]$Peer, [string]$Name, [string]$Unit, [string]$Fmt) {
    $v = if ($App.ContainsKey($Name)) { $App[$Name].ToString($Fmt, $Inv) } else { '-' }
    $p = if ($Peer.ContainsKey($Name)) { $Peer[$Name].ToString($Fmt, $Inv) } else { '-' }
    $ratio = if ($App.ContainsKey($Name) -and $Peer.ContainsKey($Name) -and $Peer[$Name] -gt 0) {
        ($App[$Name] / $Peer[$Name]).ToString('F2', $Inv)
    } else { '-' }
    return "bench $Name $v $Unit peer=$p ratio=$ratio"
}

# Pair figures (root: they need the namespace lab): SMTP ingest through a unit's floating
# address with synchronous replication, against the same binary as a single node in the same
# lab (target ratio >= 0.70), and the client-visible pause of a failover (kill -9, 3 s
# dead-time; target <= 5000 ms median) and of a planned switchover (target <= 1000 ms).
function Measure-Pair {
    if (-not (Test-Root)) {
        Write-Log 'bench: pair figures need root (network namespaces); skipped'
        Write-Result 'bench smtp_ingest_pair - msgs/s single=- ratio=-'
        return $false
    }
    $env:APPLIANCE_EXE = $Exe
    $lines = & bash (Join-Path $Root 'lab/bench-pair.sh') (Join-Path $LoadDir 'SmtpLoad.dll') $Messages $Sessions $MessageSize 2>&1 | ForEach-Object { "$_" }
    $code = $LASTEXITCODE
    $f = @{}
    foreach ($line in $lines) {
        if ($line -match '^(smtp_ingest_single|smtp_ingest_pair|failover_ms|switchover_ms|provision_pair_ms)=([0-9.]+)$') { $f[$Matches[1]] = [double]::Parse($Matches[2], $Inv) }
        else { Write-Log "  pair: $line" }
    }
    if ($code -ne 0 -or $f.Count -lt 5) {
        Write-Log "bench: lab/bench-pair.sh failed (exit $code)"
        Write-Result 'bench smtp_ingest_pair - msgs/s single=- ratio=-'
        return $false
    }
    $ratio = $f['smtp_ingest_pair'] / $f['smtp_ingest_single']
    Write-Result ("bench smtp_ingest_pair {0} msgs/s single={1} ratio={2}" -f $f['smtp_ingest_pair'].ToString('F1', $Inv), $f['smtp_ingest_single'].ToString('F1', $Inv), $ratio.ToString('F2', $Inv))
    Write-Result ("bench ha_failover {0} ms target=5000" -f $f['failover_ms'].ToString('F0', $Inv))
    Write-Result ("bench ha_switchover {0} ms target=1000" -f $f['switchover_ms'].ToString('F0', $Inv))
    Write-Result ("bench provision_10000_mailboxes_pair {0} ms target=5000" -f $f['provision_pair_ms'].ToString('F0', $Inv))
    return $true
}

# Provisioning end to end on a fresh node: one bulk API call of $ProvisionMailboxes mailboxes
# (migrated SHA512-CRYPT hashes, as a migration brings them) timed from the POST until the job
# is done and SMTP accepts the first and the last of them; then the rate with plain passwords,
# which the node hashes with Argon2id before journaling (bounded by the hashing cost).
function Measure-Provisioning([hashtable]$Results) {
    $tmp = New-TempDir 'appliance-prov-'
    $data = Join-Path $tmp 'data'
    $log = Join-Path $tmp 'appliance.log'
    $saved = Set-BenchEnvironment
    $app = $null
    try {
        $app = Start-Appliance $data $log
        $domain = 'prov.test'
        Invoke-ApplianceCli @('domain', 'add', $domain, '--data', $data)
        $token = (& $Exe token create --name bench --scope provision --data $data | Select-Object -First 1).Trim()
        $headers = @{ Authorization = "Bearer $token" }
        $base = "http://127.0.0.1:$($AppPorts.Http)/api/v1"
        $hash = '{SHA512-CRYPT}' + (& openssl passwd -6 -salt benchsalt $BenchPassword).Trim()
        $bulk = {
            param([int]$Count, [string]$Prefix, [bool]$Plain)
            $items = for ($i = 0; $i -lt $Count; $i++) {
                if ($Plain) { '{{"address":"{0}{1:D5}@{2}","password":"{3}"}}' -f $Prefix, $i, $domain, $BenchPassword }
                else { '{{"address":"{0}{1:D5}@{2}","passwordHash":"{3}"}}' -f $Prefix, $i, $domain, $hash }
            }
            $body = '{"mailboxes":[' + ($items -join ',') + ']}'
            $sw = [Diagnostics.Stopwatch]::StartNew()
            $job = (Invoke-RestMethod -Method Post -Uri "$base/mailboxes/bulk" -Headers $headers -ContentType 'application/json' -Body $body).job
            do {
                Start-Sleep -Milliseconds 20
                $state = Invoke-RestMethod -Uri "$base/jobs/$job" -Headers $headers
            } while ($state.state -eq 'running')
            if ($state.state -ne 'done') { throw "bulk job $job $($state.state): $($state.errors | ConvertTo-Json -Compress)" }
            $edge = @(('{0}{1:D5}@{2}' -f $Prefix, 0, $domain), ('{0}{1:D5}@{2}' -f $Prefix, ($Count - 1), $domain))
            while ((Get-RejectedRecipients $AppPorts.Smtp $edge).Count -gt 0) {
                if ($sw.ElapsedMilliseconds -gt 600000) { throw "SMTP does not accept $($edge -join ', ')" }
                Start-Sleep -Milliseconds 5
            }
            return $sw.Elapsed.TotalMilliseconds
        }
        Write-Log "appliance: provisioning $ProvisionMailboxes mailboxes in one bulk call"
        $Results.provision_bulk = & $bulk $ProvisionMailboxes 'm' $false
        Write-Log "appliance: provisioning $ProvisionPlain mailboxes with plain passwords"
        $ms = & $bulk $ProvisionPlain 'p' $true
        $Results.provision_plain = $ProvisionPlain * 1000.0 / $ms
    }
    catch {
        Write-Log "appliance provisioning: $($_.Exception.Message) log: $(Get-LogTail $log)"
        $Results.failed = $true
    }
    finally {
        if ($null -ne $app) { Stop-Appliance $app.Process }
        Restore-Environment $saved
        Remove-Item -Recurse -Force -ErrorAction SilentlyContinue $tmp
    }
}

# Only the provisioning figures (quicker than the whole bench).
function Invoke-BenchProvisioning {
    if ($SkipPublish) { Write-Log "bench: using $Exe (no publish)" } else { Write-Log (Invoke-Publish) }
    return Invoke-BenchProvisioningFigures
}

function Invoke-BenchProvisioningFigures {
    $prov = @{}
    Measure-Provisioning $prov
    if (-not $prov.ContainsKey('provision_bulk')) { Write-Result "bench provision_$($ProvisionMailboxes)_mailboxes - ms target=5000"; return 1 }
    Write-Result ("bench provision_{0}_mailboxes {1} ms target=5000" -f $ProvisionMailboxes, $prov.provision_bulk.ToString('F0', $Inv))
    Write-Result ("bench provision_plain_passwords {0} mailboxes/s" -f $prov.provision_plain.ToString('F1', $Inv))
    return 0
}

function Invoke-Bench {
    if ($SkipPublish) { Write-Log "bench: using $Exe (no publish)" } else { Write-Log (Invoke-Publish) }
    Build-LoadTool 'SmtpLoad' $LoadDir
    Build-LoadTool 'ImapLoad' $ImapLoadDir
    Build-LoadTool 'SmtpSink' $SinkDir
    $app = @{}
    $peer = @{}
    Measure-Appliance $app
    Measure-Peer $peer
    Measure-RelayAppliance $app
    Measure-RelayPeer $peer
    Write-Result (Format-Figure $app $peer 'smtp_ingest' 'msgs/s' 'F1')
    Write-Result (Format-Figure $app $peer 'idle_rss' 'MB' 'F1')
    Write-Result (Format-Figure $app @{} 'start_to_smtp' 'ms' 'F0')
    Write-Result (Format-Figure $app $peer 'imap_mixed' 'cmds/s' 'F1')
    Write-Result (Format-Figure $app $peer 'imap_idle_conn_mem' 'KB/conn' 'F0')
    Write-Result (Format-Figure $app $peer $SearchFigure 'ms' 'F1')
    Write-Result (Format-Figure $app @{} $WebmailFigure 'ms' 'F1')
    Write-Result (Format-Figure $app $peer 'relay_throughput' 'msgs/s' 'F1')
    if ((Invoke-BenchProvisioningFigures) -ne 0) { $app.failed = $true }
    $pairOk = Measure-Pair
    $missing = @('smtp_ingest', 'idle_rss', 'start_to_smtp', 'imap_mixed', 'imap_idle_conn_mem', $SearchFigure, $WebmailFigure, 'relay_throughput' |
            Where-Object { -not $app.ContainsKey($_) })
    if (-not $pairOk) { $missing += 'pair' }
    if ($app.ContainsKey('failed') -or $peer.ContainsKey('failed') -or $missing.Count -gt 0) {
        Write-Log 'bench: some figures could not be measured (see above)'
        return 1
    }
    return 0
}

# ---- HA lab and fault suite (lab/lab.sh, lab/pair.sh; root only) ----
$LabPrefix = 'ap-'
$LabDir = "/tmp/appliance-lab-$LabPrefix"

function Invoke-Lab {
    if (-not (Test-Root)) { throw 'the lab builds network namespaces: run as root' }
    if (-not $SkipPublish) { Invoke-Publish | Out-Null }
    $env:APPLIANCE_EXE = $Exe
    $lab = Join-Path $Root 'lab/lab.sh'
    $pair = Join-Path $Root 'lab/pair.sh'
    & bash $lab up --prefix $LabPrefix 2>&1 | ForEach-Object { Write-Log "  $_" }
    if ($LASTEXITCODE -ne 0) { throw 'lab.sh up failed' }
    foreach ($node in 'node1', 'node2') {
        & bash $pair start $node --prefix $LabPrefix --dir $LabDir 2>&1 | ForEach-Object { Write-Log "  $_" }
        if ($LASTEXITCODE -ne 0) { throw "pair.sh start $node failed (log: $LabDir/$node.log)" }
    }
    & bash $pair provision --prefix $LabPrefix --dir $LabDir 2>&1 | ForEach-Object { Write-Log "  $_" }
    Start-Sleep -Seconds 3
    & bash $pair cli node1 cluster status --prefix $LabPrefix --dir $LabDir
    & bash $lab status --prefix $LabPrefix
    Write-Result @"
lab up: node1 10.77.0.1, node2 10.77.0.2; store-a on 10.77.0.10 (alice@lab.test), store-b on 10.77.0.11 (bob@lab.test), password lab-password
  mail:    ip netns exec ${LabPrefix}client swaks --server 10.77.0.10 --to alice@lab.test      (or python3 -m smtplib, curl smtp://…)
  read:    ip netns exec ${LabPrefix}client curl -k --ssl-reqd imap://10.77.0.10/INBOX -u alice@lab.test:lab-password
  status:  lab/pair.sh cli node1 cluster status --dir $LabDir      logs: $LabDir/node1.log, node2.log
  faults:  lab/pair.sh kill node1 --dir $LabDir | lab/lab.sh cut node1 repl|public|all | lab/lab.sh poweroff node2 | lab/lab.sh heal/poweron …
  down:    dotnet pwsh build.ps1 lab-down
"@
    return 0
}

function Invoke-LabDown {
    $pair = Join-Path $Root 'lab/pair.sh'
    foreach ($node in 'node1', 'node2') { & bash $pair kill $node --prefix $LabPrefix --dir $LabDir 2>&1 | ForEach-Object { Write-Log "  $_" } }
    & bash (Join-Path $Root 'lab/lab.sh') down --prefix $LabPrefix 2>&1 | ForEach-Object { Write-Log "  $_" }
    Remove-Item -Recurse -Force $LabDir -ErrorAction SilentlyContinue
    return 0
}

# The fault suite is the xunit test HaSuiteTests (it also runs in CI with the other tests);
# this runs it alone against the published binary and prints its scenario lines.
function Invoke-HaSuite {
    if (-not (Test-Root)) { throw 'the HA suite builds network namespaces: run as root' }
    if (-not $SkipPublish) { Invoke-Publish | Out-Null }
    $report = Join-Path $Root 'artifacts/ha-suite.txt'
    New-Item -ItemType Directory -Force (Split-Path $report) | Out-Null
    Remove-Item $report -ErrorAction SilentlyContinue
    $env:APPLIANCE_EXE = $Exe
    $env:APPLIANCE_HA_REPORT = $report
    $env:APPLIANCE_HA_LOGS = Join-Path $Root 'artifacts/ha-suite-logs'
    if ($Scenarios -ne '') { $env:APPLIANCE_HA_SCENARIOS = $Scenarios }
    & dotnet test (Join-Path $Root 'Appliance.Tests') --filter 'FullyQualifiedName~HaSuiteTests' --logger 'console;verbosity=detailed' 2>&1 |
        ForEach-Object { Write-Log "  $_" }
    $code = $LASTEXITCODE
    if (Test-Path $report) { Get-Content $report | ForEach-Object { Write-Result $_ } }
    return $(if ($code -eq 0) { 0 } else { 1 })
}

# firmware/tests: net-checks.sh (nft, WireGuard scripts, shellcheck) and install-check.sh
# (debootstrap, install.sh into two roots, the installed nodes pair up in namespaces).
function Invoke-FirmwareCheck {
    if (-not (Test-Root)) { throw 'the firmware checks load firewall rules and build roots and namespaces: run as root' }
    $tools = @{ nft = 'nftables'; wg = 'wireguard-tools'; shellcheck = 'shellcheck'; debootstrap = 'debootstrap'; 'systemd-analyze' = 'systemd' }
    $missing = @($tools.Keys | Where-Object { -not (Get-Command $_ -ErrorAction SilentlyContinue) } | ForEach-Object { $tools[$_] })
    if ($missing.Count -gt 0) {
        Write-Log "installing $($missing -join ' ')"
        & apt-get update -q 2>&1 | ForEach-Object { Write-Log "  $_" }
        & apt-get install -y -q --no-install-recommends @missing 2>&1 | ForEach-Object { Write-Log "  $_" }
        if ($LASTEXITCODE -ne 0) { throw "apt-get install $($missing -join ' ') failed" }
    }
    if (-not $SkipPublish) { Invoke-Publish | Out-Null }
    $code = 0
    foreach ($check in @(@('net-checks.sh'), @('install-check.sh', (Split-Path $Exe)))) {
        Write-Log "firmware/tests/$($check[0])"
        & bash (Join-Path $Root "firmware/tests/$($check[0])") @($check | Select-Object -Skip 1) 2>&1 | ForEach-Object { Write-Log "  $_" }
        if ($LASTEXITCODE -ne 0) { Write-Log "firmware/tests/$($check[0]) failed"; $code = 1 }
        else { Write-Result "firmware $($check[0]) passed" }
    }
    return $code
}

function Show-Usage {
    Write-Log @'
usage: dotnet pwsh build.ps1 <task> [options]
tasks:
  publish   native-AOT publish of Appliance to artifacts/publish (fails on any warning)
  bench     publish, then benchmark the appliance against Postfix+Dovecot:
            -Messages 2000 -Sessions 10 -Mailboxes 10 -MessageSize 4096
            -ImapCommands 30000 -IdleConnections 500 -SearchMessages 50000
            -Exe PATH  bench an existing executable instead of publishing
  bench-provisioning  publish, then only the provisioning figures (10,000 mailboxes in
            one bulk call, end to end; the plain-password rate)
  bench-relay  publish, then only relay_throughput (-Messages -Sessions -Mailboxes
            -MessageSize -Exe as for bench): outbound relaying to a smart host, against Postfix
  lab       (root) publish, build the two-node lab in network namespaces, start the pair
  lab-down  stop the lab's nodes and remove its namespaces
  ha-suite  (root) publish, run the HA fault scenarios; prints one line per scenario:
            scenario NAME lost=N duplicated=N dual_active=N downtime_ms=N
            -Scenarios a,b  only those scenarios
  firmware-check  (root) publish, then firmware/tests: firewall and VPN checks, and
            install.sh into debootstrapped roots whose nodes must pair up in namespaces
'@
}

try {
    switch ($Task) {
        'publish' { Write-Result (Invoke-Publish); exit 0 }
        'bench' { exit (Invoke-Bench) }
        'bench-provisioning' { exit (Invoke-BenchProvisioning) }
        'bench-relay' { exit (Invoke-BenchRelay) }
        'lab' { exit (Invoke-Lab) }
        'lab-down' { exit (Invoke-LabDown) }
        'ha-suite' { exit (Invoke-HaSuite) }
        'firmware-check' { exit (Invoke-FirmwareCheck) }
        default { Show-Usage; exit 2 }
    }
}
catch {
    Write-Log "build.ps1 $($Task): $($_.Exception.Message)"
    exit 1
}
