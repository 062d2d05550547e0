package careloop.fhirvalidator;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.support.DefaultProfileValidationSupport;
import ca.uhn.fhir.context.support.IValidationSupport;
import ca.uhn.fhir.util.VersionUtil;
import ca.uhn.fhir.validation.FhirValidator;
import ca.uhn.fhir.validation.ResultSeverityEnum;
import ca.uhn.fhir.validation.SingleValidationMessage;
import ca.uhn.fhir.validation.ValidationResult;
import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.hl7.fhir.common.hapi.validation.support.InMemoryTerminologyServerValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.SnapshotGeneratingValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.UnknownCodeSystemWarningValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.ValidationSupportChain;
import org.hl7.fhir.common.hapi.validation.validator.FhirInstanceValidator;

/**
 * Validates FHIR R4 (4.0.1) resources offline with HAPI FHIR's instance validator and prints one JSON
 * document on standard output:
 *
 * <pre>
 * {"fhirVersion": "4.0.1", "hapiFhir": "8.8.1", "unknownCodeSystems": "warning",
 *  "resources": [{"source": "a.json", "index": 0, "resourceType": "Task", "id": "t1",
 *                 "issues": [{"severity": "error", "location": "Task.status", "line": 3, "column": 5,
 *                             "messageId": "...", "message": "..."}]}],
 *  "counts": {"resources": 1, "information": 0, "warning": 0, "error": 1, "fatal": 0}}
 * </pre>
 *
 * Each argument is a file ("-" is standard input) holding one resource or a JSON array of resources;
 * "index" is a resource's place in its file. Line and column are given for a file that is one resource
 * (an array's elements are validated one by one, so their issues are located by path alone). A
 * Bundle is validated as one resource: its entries are validated inside it, their issues located at
 * {@code Bundle.entry[n].resource}. Exit status: 0 when no resource has an error or fatal issue, 1 when
 * one has, 2 when the input cannot be read.
 *
 * <p>Terminology is checked against what ships with FHIR R4 itself (its code systems and value sets)
 * and the common systems HAPI knows offline (UCUM, BCP-47 languages, MIME types, ISO countries and
 * currencies, US states). A code from another system cannot be looked up without a terminology server
 * and is never an error for that alone:
 *
 * <ul>
 *   <li>LOINC, an implementation guide's code systems (US Core, the Gravity SDOH codes) and careloop's
 *       own {@code urn:careloop:} systems: a warning, "CodeSystem is unknown and can't be validated"
 *       ("unknownCodeSystems" in the report);
 *   <li>SNOMED CT: HAPI's validator does not look it up offline and says nothing, unless a binding
 *       names a value set the code is not in (then as that binding's strength says).
 * </ul>
 *
 * Such a code is not checked either: a made-up LOINC code passes with the same warning. Every other
 * error stays an error: a wrong code from a system FHIR R4 defines (Task.status "bogus"), any code
 * outside a required value set, a missing required element, an element R4 does not have, a value of
 * the wrong type. One correction of HAPI's is made, for R4's preferred binding of languages (see
 * {@link CommonLanguagesAsPreferred}).
 */
public final class Validate {
  private static final ObjectMapper JSON = new ObjectMapper();

  private Validate() {}

  public static void main(String[] args) throws IOException {
    if (args.length == 0 || args[0].equals("-h") || args[0].equals("--help")) {
      System.err.println("usage: Validate FILE... (each a resource or a JSON array; - is stdin)");
      System.exit(args.length == 0 ? 2 : 0);
    }
    // Every input is read before anything is written: an unreadable one leaves no half a report.
    List<List<Input>> inputs = new ArrayList<>();
    for (String source : args) {
      inputs.add(read(source));
    }
    FhirValidator validator = validator(FhirContext.forR4Cached());
    int[] counts = new int[ResultSeverityEnum.values().length];
    int resources = 0;
    PrintStream stdout = System.out;
    JsonGenerator out = JSON.getFactory().createGenerator((OutputStream) stdout);
    out.useDefaultPrettyPrinter();
    out.writeStartObject();
    out.writeStringField("fhirVersion", "4.0.1");
    out.writeStringField("hapiFhir", VersionUtil.getVersion());
    out.writeStringField("unknownCodeSystems", "warning");
    out.writeArrayFieldStart("resources");
    for (int file = 0; file < args.length; file++) {
      String source = args[file];
      List<Input> found = inputs.get(file);
      for (int index = 0; index < found.size(); index++) {
        Input input = found.get(index);
        ValidationResult result = validator.validateWithResult(input.text());
        resources++;
        out.writeStartObject();
        out.writeStringField("source", source);
        out.writeNumberField("index", index);
        out.writeStringField("resourceType", input.resource().path("resourceType").asText(null));
        out.writeStringField("id", input.resource().path("id").asText(null));
        out.writeArrayFieldStart("issues");
        for (SingleValidationMessage message : result.getMessages()) {
          counts[message.getSeverity().ordinal()]++;
          writeIssue(out, message, input.located());
        }
        out.writeEndArray();
        out.writeEndObject();
      }
    }
    out.writeEndArray();
    out.writeObjectFieldStart("counts");
    out.writeNumberField("resources", resources);
    for (ResultSeverityEnum severity : ResultSeverityEnum.values()) {
      out.writeNumberField(severity.getCode(), counts[severity.ordinal()]);
    }
    out.writeEndObject();
    out.writeEndObject();
    out.flush();
    stdout.println();
    stdout.flush();
    boolean failed =
        counts[ResultSeverityEnum.ERROR.ordinal()] + counts[ResultSeverityEnum.FATAL.ordinal()] > 0;
    System.exit(failed ? 1 : 0);
  }

  /** The instance validator over R4's own definitions and the terminology that can be had offline. */
  static FhirValidator validator(FhirContext context) {
    UnknownCodeSystemWarningValidationSupport unknownCodeSystems =
        new UnknownCodeSystemWarningValidationSupport(context);
    unknownCodeSystems.setNonExistentCodeSystemSeverity(IValidationSupport.IssueSeverity.WARNING);
    ValidationSupportChain chain =
        new ValidationSupportChain(
            new DefaultProfileValidationSupport(context),
            new CommonLanguagesAsPreferred(context),
            new InMemoryTerminologyServerValidationSupport(context),
            new SnapshotGeneratingValidationSupport(context),
            // Last: it answers only for the code systems that nothing above it knows.
            unknownCodeSystems);
    FhirInstanceValidator instanceValidator = new FhirInstanceValidator(chain);
    FhirValidator validator = context.newValidator();
    validator.registerValidatorModule(instanceValidator);
    return validator;
  }

  /**
   * One resource to validate: a file's own text when the file is that resource (issues then carry its
   * line and column), else an array element written out again (issues located by path alone).
   */
  record Input(JsonNode resource, String text, boolean located) {}

  static List<Input> read(String source) throws IOException {
    String text;
    JsonNode document;
    try (InputStream in = source.equals("-") ? System.in : Files.newInputStream(Path.of(source))) {
      text = new String(in.readAllBytes(), StandardCharsets.UTF_8);
      document = JSON.readTree(text);
    } catch (IOException e) {
      System.err.println("fhir-validator: cannot read " + source + ": " + e.getMessage());
      System.exit(2);
      return List.of();
    }
    List<Input> found = new ArrayList<>();
    if (document != null && document.isArray()) {
      for (JsonNode resource : document) {
        found.add(new Input(resource, JSON.writeValueAsString(resource), false));
      }
    } else if (document != null) {
      found.add(new Input(document, text, true));
    }
    for (Input input : found) {
      if (!input.resource().isObject() || !input.resource().path("resourceType").isTextual()) {
        System.err.println("fhir-validator: " + source + " holds something that is not a resource");
        System.exit(2);
      }
    }
    return found;
  }

  private static void writeIssue(JsonGenerator out, SingleValidationMessage message, boolean located)
      throws IOException {
    out.writeStartObject();
    out.writeStringField("severity", message.getSeverity().getCode());
    out.writeStringField("location", message.getLocationString());
    if (located && message.getLocationLine() != null) {
      out.writeNumberField("line", message.getLocationLine());
    }
    if (located && message.getLocationCol() != null) {
      out.writeNumberField("column", message.getLocationCol());
    }
    out.writeStringField("messageId", message.getMessageId());
    out.writeStringField("message", message.getMessage());
    out.writeEndObject();
  }
}
