import Foundation
import Testing

@testable import LoadGenerator

@Suite("/proc readings")
struct ProcStatTests {
    @Test(
        "CPU times and minor faults are read after the last parenthesis, so a command name with spaces and parentheses is skipped"
    )
    func statLine() {
        // Fields: pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ...
        let line = "4242 (ps (a) b) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0"
        let seconds = ProcStat.cpuSeconds(statLine: line)
        #expect(seconds == 300 / ProcStat.ticksPerSecond)
        let times = ProcStat.times(statLine: line)
        #expect(times?.user == 250 / ProcStat.ticksPerSecond)
        #expect(times?.system == 50 / ProcStat.ticksPerSecond)
        #expect(times?.minorFaults == 100)
    }

    @Test("VmRSS and VmHWM are read in kB and returned in bytes")
    func status() throws {
        let text = "Name:\tps-server\nVmPeak:\t  900000 kB\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n"
        let m = try #require(ProcStat.memory(statusText: text))
        #expect(m.rss == 10240 * 1024)
        #expect(m.peak == 20480 * 1024)
    }

    @Test("the machine's busy time leaves out idle and iowait")
    func machine() throws {
        let m = try #require(ProcStat.machine(statText: "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4\n"))
        #expect(m.busy == 150 / ProcStat.ticksPerSecond)
        #expect(m.total == 1000 / ProcStat.ticksPerSecond)
    }

    @Test("this process can be read: CPU time and memory")
    func ownProcess() throws {
        #expect(try #require(ProcStat.cpuSeconds(pid: getpid())) >= 0)
        #expect(try #require(ProcStat.memory(pid: getpid())).rss > 0)
    }
}
