namespace Appliance.Cluster;

public sealed partial class ClusterManager
{
    private bool NoAutomaticTakeover => _options.Fencing.Driver == "none" && _options.Witness.Length == 0;

    /// <summary>One step of a unit's state machine, with <paramref name="peer"/> null when the peer is dead.</summary>
    private async Task DecideAsync(Unit unit, NodeStatus? peer)
    {
        var ps = peer?.Unit(unit.Name);
        switch (unit.State)
        {
            case UnitState.Active when unit.Partition.Fault is { } fault:
                await FailAsync(unit, fault.Message);
                break;
            case UnitState.Active:
                await DecideActiveAsync(unit, peer, ps);
                break;
            case UnitState.Starting:
                if (peer is null || ps is { State: UnitState.Active } || (ps is { State: UnitState.Starting } && string.CompareOrdinal(_self, peer.Node) > 0))
                {
                    unit.State = UnitState.Stopped; // the peer went away, or it starts the unit itself
                    break;
                }
                if (peer.SeenSeq >= unit.StartingSeq && ps is not { State: UnitState.Starting or UnitState.Stopping })
                    await PromoteAsync(unit, alone: false);
                break;
            case UnitState.Failed:
                // Until the process restarts (the partition's writer does not come back). The
                // primary elsewhere cannot replicate to this copy: it asks to mark it outdated.
                if (ps is { OutdateRequest: not 0 } && ps.OutdateRequest != unit.Record.OutdatedToken)
                    MarkOutdated(unit, ps.OutdateRequest, $"this copy is marked outdated at the request of primary {peer!.Node} (the unit failed here)");
                break;
            case UnitState.Stopped:
                await DecideStoppedAsync(unit, peer, ps);
                break;
        }
    }

    private async Task DecideActiveAsync(Unit unit, NodeStatus? peer, UnitStatus? ps)
    {
        if (ps is { State: UnitState.Active })
        {
            // Both active: a split brain (the rules above never let it happen; say so loudly).
            // The older generation yields, and its extra records are kept when it resyncs.
            var yield = ps.Epoch > unit.Record.Epoch || (ps.Epoch == unit.Record.Epoch && string.CompareOrdinal(_self, peer!.Node) > 0);
            Log.Error("ALERT split brain: unit {0} is active on both nodes (here epoch {1}, peer epoch {2}); {3}", unit.Name, unit.Record.Epoch, ps.Epoch,
                yield ? "this node yields" : "the peer must yield");
            if (yield) await DemoteAsync(unit, handOver: false);
            return;
        }
        var s = unit.Sender!;
        if (s.InSync) unit.OutdateRequest = 0;
        else if (!s.Degraded)
        {
            if (peer is null)
            {
                if (_peerOff || NoAutomaticTakeover)
                {
                    s.Degraded = true;
                    Log.Warn("ALERT unit {0} degraded: peer {1} is down{2}, acknowledging on this node's disk alone", unit.Name, _options.Peer, _peerOff ? " (fenced)" : "");
                }
            }
            else if (!s.Connected && s.Stalled)
            {
                // The peer is alive but unreachable for replication: it must agree, over the
                // heartbeat links, that its copy is outdated before a write is acknowledged alone.
                if (unit.OutdateRequest == 0)
                {
                    unit.OutdateRequest = NextOutdateToken();
                    Log.Warn("unit {0}: replication link to {1} down, asking it to mark its copy outdated", unit.Name, _options.Peer);
                }
                else if (ps?.OutdatedToken == unit.OutdateRequest)
                {
                    s.Degraded = true;
                    Log.Warn("ALERT unit {0} degraded: {1} marked its copy outdated, acknowledging on this node's disk alone", unit.Name, _options.Peer);
                }
            }
        }
        if (peer is null || ps is null) return;
        unit.PeerInSyncSince = ps.InSync ? (unit.PeerInSyncSince == 0 ? Now : unit.PeerInSyncSince) : 0;
        var failback = !unit.Pinned && unit.Preferred == peer.Node && _options.Failback == "delayed"
            && unit.PeerInSyncSince != 0 && Ms(Now - unit.PeerInSyncSince) >= _options.FailbackDelaySeconds * 1000L;
        if ((_standby || unit.SwitchoverRequested || failback) && ps.InSync && s.InSync && !peer.Standby && peer.Ready && !peer.Leaving && !ps.Outdated)
        {
            Log.Info("unit {0}: handing over to {1} ({2})", unit.Name, peer.Node, _standby ? "this node is in standby" : unit.SwitchoverRequested ? "switchover" : "failback to its preferred node");
            await DemoteAsync(unit, handOver: true);
        }
    }

    private async Task DecideStoppedAsync(Unit unit, NodeStatus? peer, UnitStatus? ps)
    {
        if (peer is null)
        {
            // Takeover: only after the peer is confirmed off (or, with no way to fence, when the
            // administrator started this node alone on purpose).
            var confirmed = _peerOff || (NoAutomaticTakeover && _options.StartWithoutPeer && !_peerEverSeen);
            if (!_ready || !confirmed || _standby) return;
            if (unit.Record.Outdated || unit.Diverged)
            {
                if (!unit.LoggedCannotTakeOver) Log.Error("ALERT unit {0} cannot be taken over: this node's copy is {1}; it stays stopped until {2} returns",
                    unit.Name, unit.Diverged ? "diverged" : "outdated", _options.Peer);
                unit.LoggedCannotTakeOver = true;
                return;
            }
            await PromoteAsync(unit, alone: true);
            return;
        }
        unit.LoggedCannotTakeOver = false;
        if (unit.Diverged)
        {
            await RollBackAsync(unit, peer);
            return;
        }
        if (ps is { State: UnitState.Active or UnitState.Starting or UnitState.Stopping })
        {
            if (ps.State == UnitState.Active) unit.HandOverTo = "";
            // A copy not in sync that lacks records the primary may have acknowledged (past this
            // copy's end), or holds records of its own where the primary's generation began,
            // must not be promoted if the primary dies before the resync ends.
            if (ps.State == UnitState.Active && !unit.ReplicaInSync && !unit.Record.Outdated
                && (ps.AckedSeq > unit.Partition.LastSeq || (ps.Epoch != unit.Record.Epoch && ps.EpochStart <= unit.Partition.LastSeq)))
                MarkOutdated(unit, unit.Record.OutdatedToken, $"this copy is behind primary {peer.Node} (epoch {ps.Epoch}, acknowledged seq {ps.AckedSeq}; " +
                    $"here epoch {unit.Record.Epoch}, seq {unit.Partition.LastSeq}): outdated until it has caught up");
            if (ps.OutdateRequest != 0 && ps.OutdateRequest != unit.Record.OutdatedToken)
                MarkOutdated(unit, ps.OutdateRequest, $"this copy is marked outdated at the request of primary {peer.Node} (replication link down)");
            return;
        }
        if (_ready && peer.Ready && ShouldStartHere(unit, peer, ps))
        {
            unit.State = UnitState.Starting;
            unit.StartingSeq = Interlocked.Read(ref _seq) + 1;
            unit.Pinned = ps?.HandOverTo == _self && !peer.Leaving; // handed over by hand, not by a node stopping
            Log.Info("unit {0}: starting on {1}", unit.Name, _self);
        }
    }

    /// <summary>Persists that this copy may lack acknowledged records (it is not promoted until a resync clears it).</summary>
    private static void MarkOutdated(Unit unit, long token, string why)
    {
        unit.ReplicaInSync = false;
        unit.Record.Outdated = true;
        unit.Record.OutdatedToken = token;
        unit.Record.Save(unit.Dir);
        Log.Warn("unit {0}: {1}", unit.Name, why);
    }

    /// <summary>
    /// With both nodes up and the unit active nowhere, both nodes compute the same answer: the
    /// copy that is not outdated and has the newest data wins; on equal data, the node the unit
    /// was handed to, else its preferred node.
    /// </summary>
    private bool ShouldStartHere(Unit unit, NodeStatus peer, UnitStatus? ps)
    {
        if (_standby || unit.Record.Outdated) return false;
        if (ps is null || peer.Standby || ps.Outdated || ps.State == UnitState.Failed) return true;
        var mine = (unit.Record.Epoch, unit.Partition.LastSeq);
        var theirs = (ps.Epoch, ps.LastSeq);
        if (mine != theirs) return mine.CompareTo(theirs) > 0;
        if (ps.HandOverTo == _self) return true;
        if (unit.HandOverTo == peer.Node) return false;
        if (unit.Preferred == _self) return true;
        return unit.Preferred != peer.Node && string.CompareOrdinal(_self, peer.Node) < 0;
    }

    /// <summary>
    /// The unit cannot run here any more (its partition's writer failed: the disk): it stops,
    /// drops its address and says "failed" in the heartbeats, so the peer takes it over
    /// without fencing this node (every acknowledged record is on the peer already). It stays
    /// failed until the process restarts.
    /// </summary>
    private async Task FailAsync(Unit unit, string why)
    {
        Log.Error("ALERT unit {0} FAILED on {1}: {2}; {3} takes it over if its copy can, and it stays failed here until the appliance is restarted",
            unit.Name, _self, why, _options.Peer);
        if (unit.State is UnitState.Active or UnitState.Stopping) await DemoteAsync(unit, handOver: false);
        unit.FailedReason = why;
        unit.State = UnitState.Failed;
    }

    private async Task PromoteAsync(Unit unit, bool alone)
    {
        try
        {
            await StopReceiverAsync(unit);
            await unit.Partition.SyncFilesAsync();
        }
        catch (IOException ex)
        {
            unit.State = UnitState.Stopped;
            await FailAsync(unit, "cannot make the copy durable before starting: " + ex.Message);
            return;
        }
        var p = unit.Partition;
        unit.Record.History.Add(new Generation(unit.Record.Epoch + 1, _self, p.LastSeq + 1));
        unit.Record.Save(unit.Dir);
        var sender = new ReplicationSender(_options, _self, unit.Name, p, () => unit.Record);
        if (alone) sender.Degraded = true;
        p.Replication = sender;
        unit.Sender = sender;
        p.IsPrimary = true;
        unit.State = UnitState.Active;
        if (alone) unit.Pinned = false;
        unit.HandOverTo = "";
        unit.SwitchoverRequested = false;
        unit.OutdateRequest = 0;
        try { await _addresses(unit.Addresses, true, _stop.Token); }
        catch (Exception ex) when (ex is not OperationCanceledException) { Log.Error("ALERT unit {0}: floating address: {1}", unit.Name, ex.Message); }
        if (alone) Log.Warn("unit {0} ACTIVE on {1} (epoch {2}, from seq {3}), taken over with peer {4} down: degraded", unit.Name, _self, unit.Record.Epoch, p.LastSeq + 1, _options.Peer);
        else Log.Info("unit {0} ACTIVE on {1} (epoch {2}, from seq {3})", unit.Name, _self, unit.Record.Epoch, p.LastSeq + 1);
    }

    /// <summary>
    /// Stops the unit here. A handover first waits (briefly) until the peer has every record, so
    /// the peer starts with exactly this node's data; if it does not confirm, the unit stays.
    /// </summary>
    private async Task<bool> DemoteAsync(Unit unit, bool handOver)
    {
        unit.State = UnitState.Stopping;
        var p = unit.Partition;
        await p.DemoteAsync();
        if (handOver && unit.Sender is { } s)
        {
            var deadline = Now + System.Diagnostics.Stopwatch.Frequency * 5;
            while (s.AckedSeq < p.LastSeq && Now < deadline) await Task.Delay(10);
            if (s.AckedSeq < p.LastSeq)
            {
                p.IsPrimary = true;
                unit.State = UnitState.Active;
                unit.SwitchoverRequested = false;
                Log.Warn("unit {0}: switchover aborted, {1} did not confirm seq {2}", unit.Name, _options.Peer, p.LastSeq);
                return false;
            }
        }
        try { await _addresses(unit.Addresses, false, CancellationToken.None); }
        catch (Exception ex) { Log.Error("unit {0}: removing floating address: {1}", unit.Name, ex.Message); }
        if (unit.Sender is { } sender)
        {
            await sender.DisposeAsync();
            p.Replication = null;
            unit.Sender = null;
        }
        unit.HandOverTo = handOver ? _options.Peer : "";
        unit.SwitchoverRequested = false;
        unit.Pinned = false;
        unit.State = UnitState.Stopped;
        Log.Info("unit {0} stopped on {1} at seq {2}{3}", unit.Name, _self, p.LastSeq, handOver ? $", handed over to {_options.Peer}" : "");
        return true;
    }

    /// <summary>A node whose claim is refused or unanswered stops its own units at once; the
    /// node granted the pair waits this long before taking over, so the other has stopped.</summary>
    private TimeSpan WitnessGrace => TimeSpan.FromSeconds(_options.Fencing.DelaySeconds + 3);

    /// <summary>Seconds without a renewed grant after which the holder stops its units (the witness's lease is 10 s).</summary>
    private const int WitnessHoldMs = 4000;

    /// <summary>
    /// Without a fencing device the witness decides: the node it grants the pair takes the
    /// peer's units over (after <see cref="WitnessGrace"/>), the other stops its own.
    /// </summary>
    private async Task ClaimFromWitnessAsync(CancellationToken token)
    {
        for (var attempt = 1; ; attempt++)
        {
            var (granted, detail) = await _witness!.ClaimAsync(TimeSpan.FromSeconds(2), token);
            if (granted)
            {
                _witnessHeld = true;
                Interlocked.Exchange(ref _witnessRenewedAt, Now);
                Log.Warn("peer {0} silent: {1}; taking its units over in {2} s, once it has stopped them", _options.Peer, detail, WitnessGrace.TotalSeconds);
                await Task.Delay(WitnessGrace, token);
                if (_witnessHeld) _peerOff = true;
                return;
            }
            Log.Error("ALERT peer {0} silent and {1}: this node stops its units (attempt {2})", _options.Peer, detail, attempt);
            _selfFence = true;
            await Task.Delay(TimeSpan.FromSeconds(_options.Fencing.RetrySeconds), token);
        }
    }

    /// <summary>While running alone on the witness's grant, renew it every second; if it cannot be renewed, stop.</summary>
    private void RenewWitness()
    {
        if (!_witnessHeld || _witness is null) return;
        if (Ms(Now - Interlocked.Read(ref _witnessRenewedAt)) > WitnessHoldMs)
        {
            Log.Error("ALERT the witness grant could not be renewed for {0} ms: this node stops its units", WitnessHoldMs);
            _witnessHeld = false;
            _peerOff = false;
            _selfFence = true;
            return;
        }
        if (!_witnessRenewal.IsCompleted || Ms(Now - Interlocked.Read(ref _witnessRenewedAt)) < 1000) return;
        _witnessRenewal = Task.Run(async () =>
        {
            var (granted, _) = await _witness.ClaimAsync(TimeSpan.FromSeconds(1), _stop.Token);
            if (granted) Interlocked.Exchange(ref _witnessRenewedAt, Now);
        });
    }

    private void ReleaseWitness()
    {
        if (!_witnessHeld || _witness is null) return;
        _witnessHeld = false;
        _ = Task.Run(async () =>
        {
            try { await _witness.ReleaseAsync(_stop.Token); }
            catch (OperationCanceledException) { }
        });
    }

    private void StartFencing(NodeStatus? lastKnown)
    {
        if (_fencing is { IsCompleted: false }) return;
        _fencingStop?.Dispose();
        _fencingStop = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        var token = _fencingStop.Token;
        // The node holding fewer units waits, so after a cut between two live nodes the one
        // serving more survives (on a tie, the node whose name sorts first).
        var mine = _units.Count(u => u.State == UnitState.Active);
        var theirs = lastKnown?.Units.Count(u => u.State == UnitState.Active) ?? 0;
        double delay = mine < theirs || (mine == theirs && string.CompareOrdinal(_self, _options.Peer) > 0) ? _options.Fencing.DelaySeconds : 0;
        _fencing = Task.Run(async () =>
        {
            try
            {
                if (delay > 0)
                {
                    Log.Info("fencing {0} in {1} s (the node holding more units fences first)", _options.Peer, delay);
                    await Task.Delay(TimeSpan.FromSeconds(delay), token);
                }
                if (_witness is not null && _options.Fencing.Driver == "none")
                {
                    await ClaimFromWitnessAsync(token);
                    return;
                }
                for (var attempt = 1; ; attempt++)
                {
                    var (confirmed, detail) = await _fence.PowerOffAsync(_options.Peer, token);
                    CountFence();
                    if (confirmed)
                    {
                        _peerOff = true;
                        Log.Warn("peer {0} fenced: {1}", _options.Peer, detail);
                        return;
                    }
                    if (NoAutomaticTakeover)
                    {
                        Log.Warn("ALERT peer {0} is down and there is neither a fencing device nor a witness: its units are not taken over", _options.Peer);
                        return;
                    }
                    Log.Error("ALERT fencing {0} failed (attempt {1}): {2}; nothing is taken over, retrying in {3} s", _options.Peer, attempt, detail, _options.Fencing.RetrySeconds);
                    await Task.Delay(TimeSpan.FromSeconds(_options.Fencing.RetrySeconds), token);
                }
            }
            catch (OperationCanceledException) { Log.Info("fencing of {0} called off: it is back", _options.Peer); }
        });
    }
}
