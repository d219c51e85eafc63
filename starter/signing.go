package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/dovaclean/go-update-orchestrator/activities/signing"
	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// Firmware signing happens here, on the operator's machine: the private
// key is read by these commands only, and only the signature, which is
// public, goes into a rollout spec.

func keygenCommand() *cli.Command {
	return &cli.Command{
		Name:  "keygen",
		Usage: "create a firmware signing key pair: DIR/" + signing.PrivateKeyFile + " (mode 0600) and DIR/" + signing.PublicKeyFile,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Usage: "write the keys into `DIR` (created if missing; existing keys are never overwritten)"},
		},
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return badInput("keygen takes no arguments, got %q", c.Args().Slice())
			}
			if c.String("out") == "" {
				return badInput("--out is required: the directory to write the keys into")
			}
			priv, pub, err := signing.GenerateKeyFiles(c.String("out"))
			if err != nil {
				return badInput("--out: %v", err)
			}
			fmt.Fprintf(c.App.Writer, "private key %s: keep it secret, sign with it (starter sign --key %s)\n", priv, priv)
			fmt.Fprintf(c.App.Writer, "public key  %s: give it to workers (worker --firmware-public-key %s)\n", pub, pub)
			return nil
		},
	}
}

func signCommand() *cli.Command {
	return &cli.Command{
		Name:      "sign",
		Usage:     "print the firmware.signature of an image pushed as a version",
		ArgsUsage: "IMAGE",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "key", Usage: "ed25519 PEM private key `FILE` (starter keygen writes one)"},
			&cli.StringFlag{Name: "version", Usage: "firmware `VERSION` the image is pushed as; the signature is valid for this version only"},
		},
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return badInput("sign needs exactly one image (a path, file:// or http(s):// URL), got %d arguments", c.NArg())
			}
			for _, required := range []string{"key", "version"} {
				if c.String(required) == "" {
					return badInput("--%s is required", required)
				}
			}
			key, err := signing.LoadPrivateKey(c.String("key"))
			if err != nil {
				return badInput("--key: %v", err)
			}
			fw := workflows.Firmware{URL: c.Args().First(), Version: c.String("version")}
			if err := resolveFirmware(c.Context, &fw); err != nil {
				return badInput("%v", err)
			}
			fmt.Fprintln(c.App.Writer, signing.Sign(key, fw.Version, fw.SHA256))
			return nil
		},
	}
}

// signingFlags are start's: where the signature comes from, and the keys
// to check it with before anything starts.
func signingFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "signature", Usage: "firmware.signature: base64 ed25519 signature `B64` (from starter sign)"},
		&cli.StringFlag{Name: "sign-key", Usage: "sign the image here with the ed25519 PEM private key `FILE`; only the signature enters the rollout"},
		&cli.StringSliceFlag{
			Name:    "firmware-public-key",
			Usage:   "check before starting that the signature verifies with the ed25519 PEM public key `FILE` (repeatable)",
			EnvVars: []string{"FIRMWARE_PUBLIC_KEY_FILE"},
		},
	}
}

// signFirmware fills in the signature of a resolved image from --signature
// or --sign-key.
func signFirmware(c *cli.Context, fw *workflows.Firmware) error {
	if c.IsSet("signature") && c.IsSet("sign-key") {
		return fmt.Errorf("--signature and --sign-key are alternatives: give one")
	}
	if c.IsSet("signature") {
		fw.Signature = c.String("signature")
	}
	if path := c.String("sign-key"); path != "" {
		key, err := signing.LoadPrivateKey(path)
		if err != nil {
			return fmt.Errorf("--sign-key: %v", err)
		}
		fw.Signature = signing.Sign(key, fw.Version, fw.SHA256)
	}
	return nil
}

// checkSignature verifies the firmware's signature with --firmware-public-key,
// as the workers will, so a rollout that every device would refuse is
// not started.
func checkSignature(c *cli.Context, fw workflows.Firmware) error {
	paths := c.StringSlice("firmware-public-key")
	if len(paths) == 0 {
		return nil
	}
	keys, err := signing.LoadPublicKeys(paths)
	if err != nil {
		return fmt.Errorf("--firmware-public-key: %v", err)
	}
	if fw.Signature == "" {
		return fmt.Errorf("--firmware-public-key: the firmware is unsigned; give --signature, --sign-key or firmware.signature in --spec")
	}
	sig, err := signing.DecodeSignature(fw.Signature)
	if err != nil {
		return fmt.Errorf("firmware.signature %v", err)
	}
	if !keys.Verify(fw.Version, fw.SHA256, sig) {
		return fmt.Errorf("firmware.signature does not verify with --firmware-public-key for version %s and sha256 %s", fw.Version, fw.SHA256)
	}
	return nil
}
