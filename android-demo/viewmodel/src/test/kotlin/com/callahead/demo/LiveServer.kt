package com.callahead.demo

import org.json.JSONArray
import org.json.JSONObject
import java.io.File
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.nio.file.Path
import java.time.Duration
import java.time.Instant
import java.time.LocalDate
import java.time.ZoneOffset
import java.util.concurrent.CompletableFuture
import java.util.concurrent.TimeUnit

/** Generous upper bound for every event-driven wait: hitting it is a failure. */
val WAIT: Duration = Duration.ofSeconds(30)

/**
 * The real `callahead-server` binary as a child process, on a loopback port
 * and a SQLite file in [dir]. Its path comes from the `callahead.server.bin`
 * system property (set by the pom from scripts/test).
 */
class LiveServer private constructor(
    private val dir: Path,
    private val timeScale: Double,
    private val simArgs: List<String>,
) : AutoCloseable {
    private var process: Process? = null
    var port: Int = 0
        private set
    val url: String get() = "http://127.0.0.1:$port"
    val db: File get() = dir.resolve("server.db").toFile()
    private val log: File get() = dir.resolve("server.log").toFile()
    private val http: HttpClient = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build()

    companion object {
        const val ADMIN = "jvm-test-admin-token-0123456789-abcdef"

        /**
         * Every simulated customer picks up after 5 s of ringing and answers
         * 10 s later (domain time): with [timeScale] 10 a call holds its
         * slot for about 1.5 s, long enough for the cap to be seen working.
         */
        val QUICK_CUSTOMERS = listOf(
            "--sim-seed", "7", "--sim-answer-rate", "1", "--sim-fail-rate", "0",
            "--sim-ring-secs", "5", "5", "--sim-talk-secs", "10", "10",
        )

        fun start(dir: Path, timeScale: Double = 10.0, simArgs: List<String> = QUICK_CUSTOMERS): LiveServer =
            LiveServer(dir, timeScale, simArgs).also { it.launch(0) }

        fun binary(): String {
            val bin = System.getProperty("callahead.server.bin")
                ?: error("set -Dcallahead.server.bin to the callahead-server binary (scripts/test does)")
            check(File(bin).canExecute()) { "$bin is not an executable callahead-server (build it first)" }
            return bin
        }
    }

    /** Starts the binary on [port] (0: any free one) and waits for its "listening" line. */
    private fun launch(port: Int) {
        check(process == null) { "already running" }
        val cmd = listOf(
            binary(), "serve",
            "--listen", "127.0.0.1:$port",
            "--db", db.path,
            "--time-scale", timeScale.toString(),
        ) + simArgs
        val pb = ProcessBuilder(cmd)
            .redirectError(ProcessBuilder.Redirect.appendTo(log))
            .redirectInput(ProcessBuilder.Redirect.PIPE)
        pb.environment()["CALLAHEAD_ADMIN_TOKEN"] = ADMIN
        pb.environment().putIfAbsent("RUST_LOG", "warn")
        val p = pb.start()
        process = p
        val listening = CompletableFuture<String>()
        Thread({
            p.inputStream.bufferedReader().useLines { lines ->
                for (line in lines) {
                    val prefix = "callahead-server listening on "
                    if (line.startsWith(prefix)) listening.complete(line.removePrefix(prefix).trim())
                }
            }
            listening.completeExceptionally(IllegalStateException("the server exited before listening; log:\n${logTail()}"))
        }, "callahead-server-stdout").apply { isDaemon = true }.start()
        val base = try {
            listening.get(WAIT.seconds, TimeUnit.SECONDS)
        } catch (e: Exception) {
            p.destroyForcibly()
            throw IllegalStateException("callahead-server did not start: ${e.message}\n${logTail()}", e)
        }
        this.port = URI(base).port
    }

    /** Graceful stop (SIGTERM), as an operator would. */
    fun stop() {
        val p = process ?: return
        process = null
        p.destroy()
        if (!p.waitFor(WAIT.seconds, TimeUnit.SECONDS)) {
            p.destroyForcibly().waitFor()
        }
    }

    /** Starts again on the same port and database file. */
    fun restart() = launch(port)

    override fun close() {
        val p = process ?: return
        process = null
        p.destroyForcibly().waitFor()
    }

    fun logTail(): String = if (log.exists()) log.readLines().takeLast(40).joinToString("\n") else "(no log)"

    // ------------------------------------------------------------ HTTP

    fun send(method: String, path: String, token: String, body: Any? = null): String {
        val req = HttpRequest.newBuilder(URI("$url$path"))
            .timeout(Duration.ofSeconds(10))
            .header("authorization", "Bearer $token")
            .header("content-type", "application/json")
            .method(
                method,
                if (body == null) HttpRequest.BodyPublishers.noBody() else HttpRequest.BodyPublishers.ofString(body.toString()),
            )
            .build()
        val resp = http.send(req, HttpResponse.BodyHandlers.ofString())
        check(resp.statusCode() in 200..299) { "$method $path: ${resp.statusCode()} ${resp.body()}" }
        return resp.body()
    }

    fun post(path: String, token: String, body: JSONObject) = JSONObject(send("POST", path, token, body))

    /** Every call of [date] as the depot's supervisor sees them: `{call, attempts}` objects. */
    fun calls(supervisor: String, date: LocalDate): List<JSONObject> {
        val list = JSONObject(send("GET", "/v1/calls?date=$date", supervisor)).getJSONArray("calls")
        return (0 until list.length()).map { list.getJSONObject(it) }
    }
}

/** A depot with one courier, an integrator key and a supervisor, made over the API. */
class Depot(val server: LiveServer) {
    val date: LocalDate = LocalDate.now(ZoneOffset.UTC)
    val depotId: Long
    val courierId: Long
    val courierToken: String
    val integratorToken: String
    val supervisorToken: String

    init {
        // Calls allowed around the clock and retries past the window start:
        // the server's clock runs [LiveServer] timeScale times faster than
        // real time, and CI may run at night in the customers' time zone.
        val allDay = JSONObject().put("from", "00:00").put("to", "23:59")
        val policy = JSONObject()
            .put("max_attempts", 3)
            .put("retry_spacing_secs", 10)
            .put("ring_timeout_secs", 30)
            .put("calling_hours", JSONObject().put("weekdays", allDay).put("weekends", allDay))
            .put("stop_at_window_start", false)
        val depot = server.post(
            "/v1/depots", LiveServer.ADMIN,
            JSONObject().put("name", "JVM depot").put("time_zone", "Europe/Moscow").put("policy", policy),
        )
        depotId = depot.getLong("id")
        val courier = server.post(
            "/v1/depots/$depotId/couriers", LiveServer.ADMIN,
            JSONObject().put("name", "JVM courier").put("phone", "+79990000001"),
        )
        courierId = courier.getJSONObject("courier").getLong("id")
        courierToken = courier.getString("token")
        integratorToken = server.post(
            "/v1/depots/$depotId/integrator-keys", LiveServer.ADMIN, JSONObject().put("name", "JVM CRM"),
        ).getString("token")
        supervisorToken = server.post(
            "/v1/depots/$depotId/supervisors", LiveServer.ADMIN, JSONObject().put("name", "JVM dispatcher"),
        ).getString("token")
    }

    /**
     * Imports today's route of [n] stops whose delivery windows start within
     * the next hour (10, 15, 20… minutes from now), as the CRM would.
     */
    fun importRoute(n: Int, now: Instant = Instant.now()) =
        importRoute((0 until n).map { i -> now.plusSeconds(60L * (10 + 5 * i)) to now.plusSeconds(60L * (70 + 5 * i)) })

    /** Imports today's route with one stop per delivery window, in this order. */
    fun importRoute(windows: List<Pair<Instant, Instant>>) {
        val stops = JSONArray()
        windows.forEachIndexed { i, (start, end) ->
            stops.put(
                JSONObject()
                    .put("external_id", "ORD-$i")
                    .put("customer_name", "Customer $i")
                    .put("phone", "+7999100%04d".format(i))
                    .put("time_zone", "Europe/Moscow")
                    .put("address", "Tverskaya $i, Moscow")
                    .put("window_start", start.toString())
                    .put("window_end", end.toString())
                    .put("order_numbers", JSONArray().put("${16000 + i}"))
                    .put("amount", JSONObject().put("minor", 150_000).put("currency", "RUB")),
            )
        }
        server.send("PUT", "/v1/couriers/$courierId/routes/$date", integratorToken, JSONObject().put("stops", stops))
    }

    /** The courier's route as the server has it: external ids in planned order. */
    fun plannedOrder(): List<String> {
        val stops = JSONObject(server.send("GET", "/v1/me/route?date=$date", courierToken)).getJSONArray("stops")
        return (0 until stops.length()).map { stops.getJSONObject(it).getJSONObject("stop").getString("external_id") }
    }

    fun calls(): List<JSONObject> = server.calls(supervisorToken, date)
}
