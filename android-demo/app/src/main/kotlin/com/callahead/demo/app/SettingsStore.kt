package com.callahead.demo.app

import android.content.Context
import uniffi.callahead.ClientSettings
import java.io.File
import java.util.UUID

/**
 * The server URL and courier token, in SharedPreferences; the client core's
 * SQLite file, in the app's private files directory.
 */
class SettingsStore(context: Context) {
    private val prefs = context.getSharedPreferences("callahead", Context.MODE_PRIVATE)
    private val filesDir = context.filesDir

    val serverUrl: String get() = prefs.getString(KEY_SERVER_URL, null) ?: EMULATOR_HOST_URL
    val token: String get() = prefs.getString(KEY_TOKEN, null).orEmpty()

    fun save(serverUrl: String, token: String) {
        prefs.edit()
            .putString(KEY_SERVER_URL, serverUrl.trim())
            .putString(KEY_TOKEN, token.trim())
            .apply()
    }

    /** `null` until a token has been saved. */
    fun clientSettings(): ClientSettings? {
        val token = token.ifEmpty { return null }
        // One database per account, so one courier's cached route and queued
        // taps are never sent with another courier's token.
        val account = UUID.nameUUIDFromBytes("$serverUrl\n$token".toByteArray())
        return ClientSettings(
            dbPath = File(filesDir, "callahead-$account.db").path,
            serverUrl = serverUrl,
            token = token,
        )
    }

    private companion object {
        const val KEY_SERVER_URL = "server_url"
        const val KEY_TOKEN = "courier_token"

        /** The development machine's loopback, as the Android emulator sees it. */
        const val EMULATOR_HOST_URL = "http://10.0.2.2:8080"
    }
}
